//! Result tables: mean +- std over seeds, as Markdown and CSV.

use super::RunResult;

pub struct Row {
    pub name: String,
    /// The task's main metric per seed, in percent (accuracy, mIoU, mAP).
    pub accs: Vec<f32>,
    pub agreements: Vec<f32>,
    pub params: usize,
    /// The task's other metrics (pixel accuracy, mAP@.5) per seed, in percent.
    pub extra: Vec<(String, Vec<f32>)>,
}

/// What a table's columns hold: the task's metric names.
#[derive(Clone, Debug)]
pub struct Columns {
    /// The main metric, as the header shows it ("test acc", "mIoU").
    pub metric: String,
    /// The other metrics, in order.
    pub extra: Vec<String>,
}

impl Columns {
    /// The columns of `results` (those of the first run).
    pub fn of(results: &[RunResult]) -> Columns {
        let first = results.first();
        Columns {
            metric: first.map_or("test acc", |r| r.task.metric()).to_string(),
            extra: first
                .map(|r| r.extra.iter().map(|(k, _)| k.clone()).collect())
                .unwrap_or_default(),
        }
    }
}

/// A header name as a CSV column stem: "test acc" -> acc, "mIoU" -> miou.
fn slug(name: &str) -> String {
    name.trim_start_matches("test ")
        .to_lowercase()
        .replace(['@', '.', ' '], "_")
}

fn mean_std(v: &[f32]) -> (f32, f32) {
    let n = v.len().max(1) as f32;
    let m = v.iter().sum::<f32>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Groups runs by name (one per seed) into rows, in first-seen order.
pub fn rows(results: &[RunResult]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for r in results {
        let row = match rows.iter_mut().find(|x| x.name == r.name) {
            Some(x) => x,
            None => {
                rows.push(Row {
                    name: r.name.clone(),
                    accs: vec![],
                    agreements: vec![],
                    params: r.params,
                    extra: r.extra.iter().map(|(k, _)| (k.clone(), vec![])).collect(),
                });
                rows.last_mut().expect("just pushed")
            }
        };
        row.accs.push(r.test_acc * 100.0);
        for (k, v) in &r.extra {
            if let Some((_, vs)) = row.extra.iter_mut().find(|(n, _)| n == k) {
                vs.push(v * 100.0);
            }
        }
        if let Some(a) = r.agreement {
            row.agreements.push(a * 100.0);
        }
    }
    rows
}

pub fn markdown(rows: &[Row], teacher: Option<(&str, f32, usize)>, cols: &Columns) -> String {
    let mut s = format!("| run | {} % (mean +- std) |", cols.metric);
    for e in &cols.extra {
        s.push_str(&format!(" {e} % |"));
    }
    s.push_str(" seeds | agreement with teacher % | student params |\n|---|---|");
    s.push_str(&"---|".repeat(cols.extra.len()));
    s.push_str("---|---|---|\n");
    if let Some((name, acc, params)) = teacher {
        s.push_str(&format!("| teacher ({name}) | {:.2} |", acc * 100.0));
        s.push_str(&" - |".repeat(cols.extra.len()));
        s.push_str(&format!(" 1 | - | {params} |\n"));
    }
    for r in rows {
        let (m, sd) = mean_std(&r.accs);
        let ag = if r.agreements.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", mean_std(&r.agreements).0)
        };
        s.push_str(&format!("| {} | {m:.2} +- {sd:.2} |", r.name));
        for (_, v) in &r.extra {
            let (em, esd) = mean_std(v);
            s.push_str(&format!(" {em:.2} +- {esd:.2} |"));
        }
        s.push_str(&format!(" {} | {ag} | {} |\n", r.accs.len(), r.params));
    }
    s
}

pub fn csv(rows: &[Row], teacher: Option<(&str, f32, usize)>, cols: &Columns) -> String {
    let m = slug(&cols.metric);
    let mut s = format!("run,{m}_mean,{m}_std,seeds,agreement_mean,params,{m}s");
    for e in &cols.extra {
        let e = slug(e);
        s.push_str(&format!(",{e}_mean,{e}_std"));
    }
    s.push('\n');
    if let Some((name, acc, params)) = teacher {
        s.push_str(&format!(
            "teacher ({name}),{:.4},0,1,,{params},{:.4}",
            acc * 100.0,
            acc * 100.0
        ));
        s.push_str(&",,".repeat(cols.extra.len()));
        s.push('\n');
    }
    for r in rows {
        let (m, sd) = mean_std(&r.accs);
        let ag = if r.agreements.is_empty() {
            String::new()
        } else {
            format!("{:.4}", mean_std(&r.agreements).0)
        };
        let all: Vec<String> = r.accs.iter().map(|a| format!("{a:.4}")).collect();
        s.push_str(&format!(
            "{},{m:.4},{sd:.4},{},{ag},{},{}",
            r.name,
            r.accs.len(),
            r.params,
            all.join(" ")
        ));
        for (_, v) in &r.extra {
            let (em, esd) = mean_std(v);
            s.push_str(&format!(",{em:.4},{esd:.4}"));
        }
        s.push('\n');
    }
    s
}
