//! Line charts as SVG: one polyline per series over time, drawn on the
//! server, so the page needs no chart library.
//!
//! ```
//! use monitor::svg::{line_chart, Series};
//!
//! let s = Series { name: "sensor-001".into(), points: vec![(0.0, 21.0), (1.0, 21.5)], bold: false };
//! let svg = line_chart("°C", &[s], 600, 240);
//! assert!(svg.starts_with("<svg") && svg.contains("<polyline") && svg.contains("sensor-001"));
//! ```

use std::fmt::Write as _;

/// Line colours, in turn; a bold series is drawn in black.
const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// Room left of the plot for the y labels, and right for the legend.
const LEFT: f64 = 84.0;
const RIGHT: f64 = 170.0;
const PAD: f64 = 12.0;

/// One line: `(seconds, value)` points, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points.
    pub points: Vec<(f64, f64)>,
    /// Drawn thicker, in black (the overall average).
    pub bold: bool,
}

/// Text made safe for XML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The range of the values, widened a little (and around a lone value).
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold(None, |acc: Option<(f64, f64)>, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    let margin = ((hi - lo) * 0.08).max(0.05);
    Some((lo - margin, hi + margin))
}

/// `v` with as many decimals as a range of `span` needs.
fn number(v: f64, span: f64) -> String {
    if span >= 20.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A chart `width` × `height` pixels of `series` over time, with the
/// value's `unit` on the y axis and a legend naming each series with its
/// last value.
pub fn line_chart(unit: &str, series: &[Series], width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let mut svg = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fff"/>"##
    );
    let points = || series.iter().flat_map(|s| s.points.iter());
    let (Some((t0, t1)), Some((lo, hi))) = (bounds(points().map(|p| p.0)), bounds(points().map(|p| p.1))) else {
        let _ = write!(svg, r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">waiting for readings…</text></svg>"##, w / 2.0, h / 2.0);
        return svg;
    };
    // Room at the bottom for the time labels.
    let (plot_w, plot_h) = (w - LEFT - RIGHT, h - 3.0 * PAD - 8.0);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * plot_w;
    let y = |v: f64| PAD + (hi - v) / (hi - lo) * plot_h;
    // Axes, and three labelled grid lines.
    let _ = write!(svg, r##"<g stroke="#ccc"><line x1="{LEFT}" y1="{PAD}" x2="{LEFT}" y2="{}"/>"##, PAD + plot_h);
    for i in 0..3 {
        let v = lo + (hi - lo) * (0.1 + 0.4 * f64::from(i));
        let _ = write!(svg, r#"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke-dasharray="3,3"/>"#, y(v), LEFT + plot_w);
    }
    svg.push_str("</g>");
    for (t, anchor) in [(t0, "start"), (t1, "end")] {
        let _ = write!(svg, r##"<text x="{:.1}" y="{}" text-anchor="{anchor}" fill="#444">{:.0} s</text>"##, x(t), h - 6.0, t.max(0.0));
    }
    for i in 0..3 {
        let v = lo + (hi - lo) * (0.1 + 0.4 * f64::from(i));
        let _ = write!(svg, r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#444">{} {}</text>"##, LEFT - 6.0, y(v) + 4.0, number(v, hi - lo), escape(unit));
    }
    for (i, s) in series.iter().enumerate() {
        let (colour, stroke) = if s.bold { ("#000", 3) } else { (PALETTE[i % PALETTE.len()], 2) };
        let name = escape(&s.name);
        let _ = write!(svg, r#"<polyline data-series="{name}" fill="none" stroke="{colour}" stroke-width="{stroke}" points=""#);
        for (t, v) in &s.points {
            let _ = write!(svg, "{:.1},{:.1} ", x(*t), y(*v));
        }
        svg.push_str(r#""/>"#);
        let ly = PAD + 8.0 + 18.0 * i as f64;
        let last = s.points.last().map_or_else(String::new, |p| number(p.1, hi - lo));
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="4" fill="{colour}"/><text x="{}" y="{}">{name} {last}</text>"#,
            w - RIGHT + 10.0,
            ly - 4.0,
            w - RIGHT + 26.0,
            ly
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_chart_says_it_waits() {
        let svg = line_chart("°C", &[], 300, 100);
        assert!(svg.contains("waiting for readings") && svg.ends_with("</svg>"));
    }

    #[test]
    fn names_are_escaped_and_points_stay_in_the_plot() {
        let s = Series { name: "<a&b>".into(), points: vec![(0.0, 1.0), (10.0, 3.0), (20.0, 2.0)], bold: true };
        let svg = line_chart("x", &[s], 500, 200);
        assert!(svg.contains("&lt;a&amp;b&gt;") && !svg.contains("<a&b>"));
        let points = svg.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap();
        for pair in points.split_whitespace() {
            let (x, y) = pair.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=500.0 - RIGHT).contains(&x) && (PAD..=200.0 - PAD).contains(&y), "{pair}");
        }
    }
}
