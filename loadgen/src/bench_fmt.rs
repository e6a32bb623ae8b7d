//! Number formats and markdown tables of the bench report (`ringmq-loadgen report`).

/// "—" for a figure the run does not have.
pub const NONE: &str = "—";

/// 1234567 → "1.23 M", 440883 → "441 k": three significant digits.
pub fn si(v: Option<f64>) -> String {
    let Some(v) = v else { return NONE.into() };
    let (x, unit) = [(1e9, " G"), (1e6, " M"), (1e3, " k")]
        .iter()
        .find(|(d, _)| v.abs() >= *d)
        .map_or((v, ""), |&(d, u)| (v / d, u));
    let whole = if x.abs() >= 1.0 { (x.abs().log10().floor() as usize) + 1 } else { 1 };
    let dec = 3usize.saturating_sub(whole);
    format!("{x:.dec$}{unit}")
}

/// Microseconds in the unit that keeps three or four digits: "85.4 µs", "2.50 ms".
pub fn us(v: Option<f64>) -> String {
    match v {
        None => NONE.into(),
        Some(v) if v >= 1e6 => format!("{:.2} s", v / 1e6),
        Some(v) if v >= 1e5 => format!("{:.0} ms", v / 1e3),
        Some(v) if v >= 1e4 => format!("{:.1} ms", v / 1e3),
        Some(v) if v >= 1e3 => format!("{:.2} ms", v / 1e3),
        Some(v) if v >= 100.0 => format!("{v:.0} µs"),
        Some(v) => format!("{v:.1} µs"),
    }
}

/// CPU-µs per message: "0.312", "14.2", "215".
pub fn cpu(v: Option<f64>) -> String {
    match v {
        None => NONE.into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// a ÷ b as "12.3×".
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a > 0.0 => {
            let r = a / b;
            if r >= 100.0 {
                format!("{r:.0}×")
            } else if r >= 10.0 {
                format!("{r:.1}×")
            } else {
                format!("{r:.2}×")
            }
        }
        _ => NONE.into(),
    }
}

/// 1234567 → "1,234,567".
pub fn int(v: Option<u64>) -> String {
    let Some(v) = v else { return NONE.into() };
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A broker's name as its makers write it.
pub fn broker_name(b: &str) -> &str {
    match b {
        "mosquitto" => "Mosquitto",
        other => other,
    }
}

/// A markdown table; `right` marks the columns aligned right (numbers).
pub fn table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|", header.join(" | "));
    for (i, _) in header.iter().enumerate() {
        s.push_str(if right.get(i).copied().unwrap_or(false) { "--:|" } else { "---|" });
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_figures_for_tables() {
        assert_eq!(si(Some(1_234_567.0)), "1.23 M");
        assert_eq!(si(Some(440_883.0)), "441 k");
        assert_eq!(si(Some(18_700_000.0)), "18.7 M");
        assert_eq!(si(Some(950.0)), "950");
        assert_eq!(si(None), "—");
        assert_eq!(us(Some(85.44)), "85.4 µs");
        assert_eq!(us(Some(2500.0)), "2.50 ms");
        assert_eq!(us(Some(19_634.0)), "19.6 ms");
        assert_eq!(us(Some(242_480.0)), "242 ms");
        assert_eq!(ratio(Some(12.8), Some(1.0)), "12.8×");
        assert_eq!(ratio(Some(4.6), Some(1.0)), "4.60×");
        assert_eq!(ratio(Some(1.0), None), "—");
        assert_eq!(int(Some(1_234_567)), "1,234,567");
        assert_eq!(int(Some(12)), "12");
        assert_eq!(
            table(&["a", "b"], &[false, true], &[vec!["x".into(), "1".into()]]),
            "| a | b |\n|---|--:|\n| x | 1 |\n"
        );
    }
}
