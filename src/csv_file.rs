//! The CSV files the tool writes (`metrics.csv` of a run or a head, `results.csv` of a transfer),
//! through the `csv` crate, so every field is quoted and escaped as RFC 4180 says (a head named
//! `mlp:512,512` stays one field). The header is the row type's field names.

use serde::Serialize;

use crate::error::{Error, Result};

/// The CSV text of `rows` (a header line, then one line per row). `None` fields are empty.
pub fn to_string<T: Serialize>(rows: &[T]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)
            .map_err(|e| Error::Shape(format!("CSV row: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Shape(format!("CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Shape(format!("CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Row {
        head: String,
        retrain: Option<usize>,
        top1: f64,
    }

    #[test]
    fn fields_with_commas_and_quotes_round_trip() {
        let rows = vec![
            Row {
                head: "mlp:512,512".into(),
                retrain: Some(3),
                top1: 0.25,
            },
            Row {
                head: "say \"hi\"".into(),
                retrain: None,
                top1: f64::NAN,
            },
        ];
        let text = to_string(&rows).unwrap();
        assert!(
            text.starts_with("head,retrain,top1\n\"mlp:512,512\",3,0.25\n"),
            "{text}"
        );
        let back: Vec<Row> = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(back[0], rows[0]);
        assert_eq!(
            (back[1].head.as_str(), back[1].retrain),
            ("say \"hi\"", None)
        );
        assert!(back[1].top1.is_nan());
    }
}
