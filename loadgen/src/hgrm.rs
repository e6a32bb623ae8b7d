//! Histograms as percentile-distribution text, byte for byte the format of HdrHistogram's
//! Java `AbstractHistogram.outputPercentileDistribution` (what wrk2 prints and the
//! HdrHistogram plotter reads): a header, one line per percentile tick (5 ticks per
//! half-distance to 100%), and a footer with mean, standard deviation, max, count and
//! the histogram's bucket geometry.

use hdrhistogram::Histogram;
use std::fmt::Write;

/// Percentile ticks per half-distance, as the Java default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The distribution of `h` with values divided by `scale` (1000.0 turns ns into µs).
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    let digits = h.sigfig() as usize;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
            }
        }
    }
    let (mean, stdev) = if !h.is_empty() { (h.mean() / scale, h.stdev() / scale) } else { (0.0, 0.0) };
    let _ = writeln!(out, "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]");
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ =
        writeln!(out, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), sub_buckets(h.sigfig()));
    out
}

/// Sub-buckets per bucket, as HdrHistogram derives it from the significant digits.
fn sub_buckets(sigfig: u8) -> u32 {
    let largest_single_unit = 2 * 10u64.pow(sigfig as u32);
    let magnitude = (largest_single_unit as f64).log2().ceil() as u32;
    1 << magnitude
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::new_histogram;

    #[test]
    fn writes_the_java_format() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap(); // 1 µs .. 10 ms, in ns
        }
        let text = percentile_distribution(&h, 1000.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        // First tick: the lowest value, percentile 0.
        assert_eq!(lines[2], "       1.000 0.000000000000          1           1.00");
        // Every tick line: value with 3 decimals, percentile with 12, count, 1/(1-p).
        for l in &lines[2..lines.len() - 4] {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{l:?}");
            assert_eq!(f[0].split('.').nth(1).unwrap().len(), 3, "{l:?}");
            assert_eq!(f[1].split('.').nth(1).unwrap().len(), 12, "{l:?}");
            assert_eq!(l.len(), 12 + 1 + 14 + 1 + 10 + 1 + 14, "{l:?}");
        }
        // The 100% line has no 1/(1-p) column.
        let last = lines[lines.len() - 4];
        assert!(last.contains(" 1.000000000000      10000"), "{last:?}");
        assert_eq!(last.split_whitespace().count(), 3);
        assert!(lines[lines.len() - 3].starts_with("#[Mean    =     5000."), "{}", lines[lines.len() - 3]);
        let max = format!("#[Max     = {:>12.3},", h.max() as f64 / 1000.0);
        assert!(lines[lines.len() - 2].starts_with(&max), "{}", lines[lines.len() - 2]);
        assert!(h.max() >= 10_000_000 && h.max() < 10_010_000);
        assert!(lines[lines.len() - 2].ends_with("Total count    =        10000]"));
        assert_eq!(
            lines[lines.len() - 1],
            format!("#[Buckets = {:>12}, SubBuckets     =         2048]", h.buckets())
        );
        // Cumulative counts never decrease and percentiles rise.
        let mut last_count = 0;
        for l in &lines[2..lines.len() - 3] {
            let c: u64 = l.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!(c >= last_count);
            last_count = c;
        }
    }

    #[test]
    fn empty_histogram_has_header_and_footer_only() {
        let text = percentile_distribution(&new_histogram(), 1000.0);
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("Total count    =            0]"));
    }
}
