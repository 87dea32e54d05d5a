//! Result tables: mean +- std over seeds, as Markdown and CSV.

use super::RunResult;

pub struct Row {
    pub name: String,
    pub accs: Vec<f32>,
    pub agreements: Vec<f32>,
    pub params: usize,
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
                });
                rows.last_mut().expect("just pushed")
            }
        };
        row.accs.push(r.test_acc * 100.0);
        if let Some(a) = r.agreement {
            row.agreements.push(a * 100.0);
        }
    }
    rows
}

pub fn markdown(rows: &[Row], teacher: Option<(&str, f32, usize)>) -> String {
    let mut s = String::from(
        "| run | test acc % (mean +- std) | seeds | agreement with teacher % | student params |\n|---|---|---|---|---|\n",
    );
    if let Some((name, acc, params)) = teacher {
        s.push_str(&format!(
            "| teacher ({name}) | {:.2} | 1 | - | {params} |\n",
            acc * 100.0
        ));
    }
    for r in rows {
        let (m, sd) = mean_std(&r.accs);
        let ag = if r.agreements.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", mean_std(&r.agreements).0)
        };
        s.push_str(&format!(
            "| {} | {m:.2} +- {sd:.2} | {} | {ag} | {} |\n",
            r.name,
            r.accs.len(),
            r.params
        ));
    }
    s
}

pub fn csv(rows: &[Row], teacher: Option<(&str, f32, usize)>) -> String {
    let mut s = String::from("run,acc_mean,acc_std,seeds,agreement_mean,params,accs\n");
    if let Some((name, acc, params)) = teacher {
        s.push_str(&format!(
            "teacher ({name}),{:.4},0,1,,{params},{:.4}\n",
            acc * 100.0,
            acc * 100.0
        ));
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
            "{},{m:.4},{sd:.4},{},{ag},{},{}\n",
            r.name,
            r.accs.len(),
            r.params,
            all.join(" ")
        ));
    }
    s
}
