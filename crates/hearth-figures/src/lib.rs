//! How benchmarks report their figures to `scripts/bench`.
//!
//! Each benchmark keeps printing its own table for people; beside it, every
//! figure that matters is also printed as one line `FIGURE {json}` (a figure,
//! with its peer from the same run when there is one) or `POINT {json}` (one
//! point of a plot). `tools/bench/report.py` collects those lines from every
//! benchmark's output into `bench/results/summary.md` and SVG plots. No
//! dependencies, so every benchmark crate can use it for free.

use std::fmt::Write;

/// Which way is better for a figure: it decides how the report words a ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// Prints a figure, and its peer measured in the same run if there is one
/// (the ratio is `value / peer`).
pub fn figure(
    bench: &str,
    name: &str,
    unit: &str,
    value: f64,
    better: Better,
    peer: Option<(&str, f64)>,
) {
    let mut line = String::from("FIGURE {");
    field(&mut line, "bench", bench);
    field(&mut line, "name", name);
    field(&mut line, "unit", unit);
    number(&mut line, "value", value);
    field(
        &mut line,
        "better",
        match better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        },
    );
    if let Some((peer_name, peer_value)) = peer {
        field(&mut line, "peer", peer_name);
        number(&mut line, "peer_value", peer_value);
        number(&mut line, "ratio", value / peer_value);
    }
    println!("{}}}", line.trim_end_matches(','));
}

/// Prints one point of a plot: `series` is one line of the plot `plot`,
/// whose axes are named by `x_label` and `y_label`.
pub fn point(plot: &str, x_label: &str, y_label: &str, series: &str, x: f64, y: f64) {
    let mut line = String::from("POINT {");
    field(&mut line, "plot", plot);
    field(&mut line, "x_label", x_label);
    field(&mut line, "y_label", y_label);
    field(&mut line, "series", series);
    number(&mut line, "x", x);
    number(&mut line, "y", y);
    println!("{}}}", line.trim_end_matches(','));
}

fn field(line: &mut String, key: &str, value: &str) {
    let _ = write!(line, "\"{key}\":\"");
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(line, "\\u{:04x}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push_str("\",");
}

fn number(line: &mut String, key: &str, value: f64) {
    // JSON has no NaN or infinity: a figure that could not be measured is null.
    if value.is_finite() {
        let _ = write!(line, "\"{key}\":{value},");
    } else {
        let _ = write!(line, "\"{key}\":null,");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_missing_numbers_are_null() {
        let mut line = String::new();
        field(&mut line, "name", "a \"quoted\" \\ name\n");
        number(&mut line, "value", f64::NAN);
        number(&mut line, "ratio", 1.5);
        assert_eq!(
            line,
            "\"name\":\"a \\\"quoted\\\" \\\\ name\\u000a\",\"value\":null,\"ratio\":1.5,"
        );
    }
}
