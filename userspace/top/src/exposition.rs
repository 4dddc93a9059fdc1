//! The Prometheus text exposition format (version 0.0.4), as far as a
//! scrape of `vxdecap capture --metrics` needs it: samples
//! `name{label="value",…} value [timestamp]`, with the escapes `\\`, `\"`
//! and `\n` in label values; comments (`# HELP`, `# TYPE`) are skipped.
//!
//! Written here rather than taken from `prometheus-parse` (0.2), which
//! splits labels on `,` and `=` and so mangles any value holding one, such
//! as an embedder's analyzer named `tenant 27, web`.

/// One sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, such as `vxdecap_received_frames_total`.
    pub name: String,
    /// Label pairs, in the order given.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not a sample of the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole scrape.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples.push(parse_sample(line).map_err(|reason| ParseError {
            line: n + 1,
            reason,
        })?);
    }
    Ok(samples)
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err("bad metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = parse_labels(body, &mut labels)?;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value).ok_or("bad value")?,
    })
}

/// Reads `key="value",…}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("label without a value")?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("bad label name");
        }
        let quoted = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next().ok_or("label value not closed")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("label value not closed")?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = quoted[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("labels not closed");
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values are exact: parsed from text or summed from integers"
)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels_and_comments() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n\
                    b{queue=\"0\",cause=\"xsk_rx_ring_full\"} 17 1700000000000\n\
                    c{quantile=\"0.99\"} 1.5e-4\nd +Inf\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "a_total");
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].label("cause"), Some("xsk_rx_ring_full"));
        assert_eq!(samples[1].value, 17.0);
        assert_eq!(samples[2].value, 1.5e-4);
        assert!(samples[3].value.is_infinite());
    }

    #[test]
    fn label_values_keep_commas_equals_braces_and_escapes() {
        let text = r#"x{analyzer="tenant 27, web",rule="vni=27 -> {t}",q="say \"hi\"\\ok\n"} 1"#;
        let s = &parse(text).unwrap()[0];
        assert_eq!(s.label("analyzer"), Some("tenant 27, web"));
        assert_eq!(s.label("rule"), Some("vni=27 -> {t}"));
        assert_eq!(s.label("q"), Some("say \"hi\"\\ok\n"));
    }

    #[test]
    fn broken_lines_are_errors_with_their_line() {
        for (text, reason) in [
            ("ok 1\nx{a=\"1\" 2", "labels not closed"),
            ("ok 1\nx{a=\"1} 2", "label value not closed"),
            ("ok 1\nx{a=1} 2", "label value not quoted"),
            ("ok 1\nx{a=\"1\"}", "no value"),
            ("ok 1\nx{a=\"1\"} many", "bad value"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!((err.line, err.reason), (2, reason), "{text}");
        }
    }
}
