//! The benchmark matrix of `scripts/bench.sh`, defined once: the scenarios, sizes and QoS
//! levels of the closed-loop runs, the cases rerun in every round, the fixed-rate latency
//! scenario and the fleet runs. bench.sh reads it from `ringmq-loadgen matrix [--quick]`
//! and the report (`ringmq-loadgen report`) labels and orders its tables from it, so
//! the two cannot drift apart.

use std::fmt::Write as _;

/// One scenario of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixScenario {
    /// Run ids start with it: `pairs-10-q1-64B`.
    pub key: &'static str,
    /// The loadgen's arguments before the message options.
    pub args: &'static str,
    /// Short, for table rows and plot titles.
    pub label: &'static str,
    /// One sentence for the report.
    pub describe: &'static str,
    /// Publishers: the fixed-rate run divides its total rate among them.
    pub pubs: u32,
}

/// Every scenario the matrix may use, in the report's order.
pub const SCENARIOS: [MatrixScenario; 5] = [
    MatrixScenario {
        key: "pairs-10",
        args: "pairs --n 10",
        label: "pairs 10",
        describe: "pairs, 10 publishers -> 10 subscribers (one topic each)",
        pubs: 10,
    },
    MatrixScenario {
        key: "pairs-100",
        args: "pairs --n 100",
        label: "pairs 100",
        describe: "pairs, 100 publishers -> 100 subscribers (one topic each)",
        pubs: 100,
    },
    MatrixScenario {
        key: "fanin-50",
        args: "fanin --pubs 50 --subs 1",
        label: "fan-in 50 → 1",
        describe: "fan-in, 50 publishers -> 1 subscriber (wildcard)",
        pubs: 50,
    },
    MatrixScenario {
        key: "fanout-50",
        args: "fanout --subs 50 --pubs 1",
        label: "fan-out 1 → 50",
        describe: "fan-out, 1 publisher -> 50 subscribers (one topic)",
        pubs: 1,
    },
    MatrixScenario {
        key: "fanout-1000",
        args: "fanout --subs 1000 --pubs 1",
        label: "fan-out 1 → 1000",
        describe: "fan-out, 1 publisher -> 1000 subscribers (one topic)",
        pubs: 1,
    },
];

/// QoS levels of the closed-loop matrix.
pub const QOSES: [u8; 3] = [0, 1, 2];
/// The cases rerun in every round after the first, and shown in the headline: the
/// two shapes users ask about first (one-to-one, one-to-many) at every QoS, 64 B.
pub const HEADLINE: [(&str, u8); 6] =
    [("pairs-10", 0), ("pairs-10", 1), ("pairs-10", 2), ("fanout-50", 0), ("fanout-50", 1), ("fanout-50", 2)];
/// Headline payload size.
pub const HEADLINE_SIZE_BYTES: usize = 64;
/// Fleet runs: many connections at a modest rate each, where the kernel's cost per
/// packet dominates.
pub const FLEET_ARGS: &str = "pairs --n 1000 --rate 50";
/// What the fleet runs are, for the report.
pub const FLEET_DESCRIBE: &str = "1,000 pairs at 50 msg/s each (50,000 msg/s in total), open loop, 64 B";
/// QoS levels of the fleet runs.
pub const FLEET_QOSES: [u8; 2] = [0, 1];

/// A matrix: which scenarios and sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    pub scenarios: Vec<MatrixScenario>,
    pub sizes_bytes: Vec<usize>,
    /// The fixed-rate latency run's scenario (QoS 1, 64 B).
    pub latency: MatrixScenario,
}

impl Matrix {
    /// `bench.sh`'s full matrix.
    pub fn full() -> Matrix {
        Matrix {
            scenarios: SCENARIOS.to_vec(),
            sizes_bytes: vec![64, 1024],
            latency: scenario("pairs-100").unwrap(),
        }
    }

    /// `bench.sh --quick`: the headline's two scenarios at 64 B.
    pub fn quick() -> Matrix {
        Matrix {
            scenarios: vec![scenario("pairs-10").unwrap(), scenario("fanout-50").unwrap()],
            sizes_bytes: vec![64],
            latency: scenario("pairs-10").unwrap(),
        }
    }

    /// The closed-loop run ids, size by size, scenario by scenario, QoS by QoS.
    pub fn case_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &size in &self.sizes_bytes {
            for s in &self.scenarios {
                for q in QOSES {
                    out.push(case_id(s.key, q, size));
                }
            }
        }
        out
    }

    /// The lines bench.sh reads: `scenario KEY ARGS`, `case ID`, `headline ID`,
    /// `latency KEY PUBS`, `fleet ARGS`.
    pub fn shell(&self) -> String {
        let mut s = String::new();
        for sc in &self.scenarios {
            let _ = writeln!(s, "scenario {} {}", sc.key, sc.args);
        }
        for id in self.case_ids() {
            let _ = writeln!(s, "case {id}");
        }
        for (key, q) in HEADLINE {
            if self.scenarios.iter().any(|sc| sc.key == key) {
                let _ = writeln!(s, "headline {}", case_id(key, q, HEADLINE_SIZE_BYTES));
            }
        }
        let _ = writeln!(s, "latency {} {} {}", self.latency.key, self.latency.pubs, self.latency.args);
        let _ = writeln!(s, "fleet {FLEET_ARGS}");
        s
    }
}

/// A scenario by its key.
pub fn scenario(key: &str) -> Option<MatrixScenario> {
    SCENARIOS.iter().copied().find(|s| s.key == key)
}

/// `pairs-10-q1-64B`.
pub fn case_id(key: &str, qos: u8, size_bytes: usize) -> String {
    format!("{key}-q{qos}-{size_bytes}B")
}

/// A closed-loop case read back from its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    pub scenario: MatrixScenario,
    pub qos: u8,
    pub size_bytes: usize,
}

/// Reads `pairs-10-q1-64B` (the run-kind prefixes already removed).
pub fn parse_case(id: &str) -> Option<Case> {
    let (key, rest) = id.rsplit_once("-q")?;
    let (qos, size) = rest.split_once('-')?;
    Some(Case {
        scenario: scenario(key)?,
        qos: qos.parse().ok()?,
        size_bytes: size.strip_suffix('B')?.parse().ok()?,
    })
}

/// "64 B", "1 KiB".
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_matrix_is_the_headline_cases() {
        let m = Matrix::quick();
        let ids = m.case_ids();
        assert_eq!(ids.len(), 6);
        let headline: Vec<String> = HEADLINE.iter().map(|&(k, q)| case_id(k, q, 64)).collect();
        for h in &headline {
            assert!(ids.contains(h), "{h}");
        }
        assert_eq!(Matrix::full().case_ids().len(), 30);
    }

    #[test]
    fn case_ids_read_back() {
        for id in Matrix::full().case_ids() {
            let c = parse_case(&id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(case_id(c.scenario.key, c.qos, c.size_bytes), id);
        }
        assert_eq!(parse_case("pairs-7-q1-64B"), None, "only the matrix's scenarios");
        assert_eq!(size_label(1024), "1 KiB");
    }

    #[test]
    fn shell_lines_carry_every_case_and_the_loadgen_arguments() {
        let text = Matrix::quick().shell();
        assert!(text.contains("scenario fanout-50 fanout --subs 50 --pubs 1\n"), "{text}");
        assert!(text.contains("case pairs-10-q2-64B\n"));
        assert!(text.contains("headline fanout-50-q1-64B\n"));
        assert!(text.contains("latency pairs-10 10 pairs --n 10\n"));
        // Every scenario's arguments parse as a loadgen command line.
        for sc in SCENARIOS {
            let mut argv = vec!["ringmq-loadgen"];
            argv.extend(sc.args.split(' '));
            assert!(<crate::cli::Args as clap::Parser>::try_parse_from(argv).is_ok(), "{}", sc.args);
        }
    }
}
