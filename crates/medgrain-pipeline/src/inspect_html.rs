//! `medgrain inspect DIR --html FILE`: one self-contained HTML report of a dataset (no network needed to view it).
//! Counts and histograms come from `stats.json` (so a dataset of any size takes seconds); QC flags by source, the
//! grounded-reports and VQA figures and the gallery come from a bounded sample of rows. Plots are drawn by `plotters`
//! (SVG backend) and embedded inline; images are embedded as data URLs; every ROI outline is the crack boundary of its
//! mask decoded from the row's RLE, drawn as an SVG path over the image. All text from the dataset is HTML-escaped.

use crate::stats::{Histogram, Stats};
use crate::PipelineError;
use base64::Engine;
use medgrain_export::export::rows::{first_rows, parts, TripletRow};
use medgrain_export::html::esc;
use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// At most this many rows of each of `grounded_reports/` and `vqa/` are read for their figures.
pub const ROW_SAMPLE: usize = 200_000;

/// What the report holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HtmlSummary {
    pub plots: usize,
    pub gallery: usize,
    pub grounded_rows_read: usize,
    pub vqa_rows_read: usize,
    pub bytes: usize,
}

fn perr(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal(format!("plot: {e}"))
}

/// A bar chart of labelled counts (largest first, at most `top`), as an SVG string.
fn bars(title: &str, m: &BTreeMap<String, u64>, top: usize) -> Result<Option<String>, PipelineError> {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    if v.is_empty() {
        return Ok(None);
    }
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.truncate(top);
    // plotters writes text as it is: only safe characters go into the SVG, the table beside it has the full labels
    let labels: Vec<String> = v
        .iter()
        .map(|(k, _)| {
            let s: String = k
                .chars()
                .filter(|c| c.is_alphanumeric() || " -_./:+()".contains(*c))
                .collect();
            if s.chars().count() > 11 {
                s.chars().take(10).collect::<String>() + "."
            } else {
                s
            }
        })
        .collect();
    let max = v.iter().map(|(_, n)| **n).max().unwrap_or(1).max(1);
    let mut svg = String::new();
    {
        let width = (120 + 70 * v.len() as u32).clamp(360, 1300);
        let root = SVGBackend::with_string(&mut svg, (width, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(safe(title), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d((0..v.len()).into_segmented(), 0u64..max + max / 10 + 1)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(v.len())
            .x_label_formatter(&|i| match i {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(v.iter().enumerate().map(|(i, (_, n))| {
                let mut r = Rectangle::new(
                    [(SegmentValue::Exact(i), 0), (SegmentValue::Exact(i + 1), **n)],
                    RGBColor(52, 101, 164).filled(),
                );
                r.set_margin(0, 0, 6, 6);
                r
            }))
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(Some(svg))
}

/// A histogram from `stats.json` bins, as an SVG string.
fn hist(title: &str, h: &Histogram, fmt: &dyn Fn(f64) -> String) -> Result<Option<String>, PipelineError> {
    if h.counts.iter().all(|c| *c == 0) {
        return Ok(None);
    }
    let mut m = Vec::new();
    for (i, c) in h.counts.iter().enumerate() {
        let lo = fmt(h.edges[i]);
        let label = match h.edges.get(i + 1) {
            Some(hi) => format!("{lo}-{}", fmt(*hi)),
            None => format!("{lo}+"),
        };
        m.push((label, *c));
    }
    let max = m.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(safe(title), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0..m.len(), 0u64..max + max / 10 + 1)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(m.len())
            .x_label_formatter(&|i| m.get(*i).map(|(l, _)| l.clone()).unwrap_or_default())
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(m.iter().enumerate().map(|(i, (_, c))| {
                let mut r = Rectangle::new([(i, 0), (i + 1, *c)], RGBColor(115, 210, 22).filled());
                r.set_margin(0, 0, 2, 2);
                r
            }))
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(Some(svg))
}

fn safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric() || " -_./:+()%,".contains(*c))
        .collect()
}

const COLOURS: [&str; 6] = ["#ef2929", "#fcaf3e", "#8ae234", "#729fcf", "#ad7fa8", "#e9b96e"];

fn gallery_item(row: &TripletRow, out: &mut String) {
    let mime = medgrain_export::html::image_mime(&row.image);
    let (w, h) = (
        row.int("width").unwrap_or(0).max(1),
        row.int("height").unwrap_or(0).max(1),
    );
    let _ = write!(
        out,
        "<figure class=\"sample\" data-id=\"{}\"><div class=\"frame\" style=\"aspect-ratio:{w}/{h}\"><img alt=\"sample image\" \
         src=\"data:{mime};base64,{}\"><svg class=\"rois\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\">",
        esc(row.id()),
        base64::engine::general_purpose::STANDARD.encode(&row.image)
    );
    let mut facts = String::new();
    for (k, roi) in row.rois().iter().enumerate() {
        let label = roi.get("label").and_then(Value::as_str).unwrap_or("");
        let colour = COLOURS[k % COLOURS.len()];
        if let Some(d) = medgrain_export::html::roi_outline(roi) {
            let _ = write!(
                out,
                "<path class=\"roi\" data-label=\"{}\" d=\"{d}\" stroke=\"{colour}\" stroke-width=\"1\" fill=\"none\" \
                 vector-effect=\"non-scaling-stroke\"/>",
                esc(label)
            );
        }
        let area = roi.get("area_px").and_then(Value::as_i64).unwrap_or(0);
        let pos = roi.get("position").and_then(Value::as_str).unwrap_or("");
        let _ = write!(
            facts,
            "<li><span class=\"swatch\" style=\"background:{colour}\"></span>{} — {area} px, {}</li>",
            esc(label),
            esc(pos)
        );
    }
    let _ = write!(
        out,
        "</svg></div><figcaption><b>{}</b> · {} · {}",
        esc(row.id()),
        esc(row.str("modality").unwrap_or("?")),
        esc(row.str("organ").unwrap_or("?"))
    );
    let _ = write!(out, "<ul class=\"facts\">{facts}</ul>");
    if let Some(flags) = row
        .fields
        .get("qc")
        .and_then(|q| q.get("flags"))
        .and_then(Value::as_array)
    {
        if !flags.is_empty() {
            let f: Vec<String> = flags.iter().filter_map(Value::as_str).map(esc).collect();
            let _ = write!(out, "<p class=\"qc\">QC: {}</p>", f.join(", "));
        }
    }
    if let Some(s) = row.fields.get("sections").and_then(Value::as_object) {
        let _ = write!(out, "<dl class=\"sections\">");
        for k in [
            "modality",
            "organ_detection",
            "roi_analysis",
            "lesion_texture",
            "local_global",
        ] {
            if let Some(t) = s.get(k).and_then(Value::as_str) {
                let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(&k.replace('_', " ")), esc(t));
            }
        }
        let _ = write!(out, "</dl>");
    }
    let _ = write!(out, "</figcaption></figure>");
}

/// Rows spread over the parts: the first rows of evenly spaced parts, `n` in all.
fn sample_rows(dir: &Path, sub: &str, n: usize) -> Result<Vec<TripletRow>, PipelineError> {
    let ps = parts(dir, sub).map_err(|e| PipelineError::Internal(e.to_string()))?;
    if ps.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    let take = ps.len().min(n);
    let per = n.div_ceil(take);
    let mut out = Vec::new();
    for k in 0..take {
        let p = &ps[k * ps.len() / take];
        out.extend(first_rows(p, per).map_err(|e| PipelineError::Internal(e.to_string()))?);
        if out.len() >= n {
            break;
        }
    }
    out.truncate(n);
    Ok(out)
}

fn table(title: &str, m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut s = format!("<table class=\"counts\"><caption>{}</caption>", esc(title));
    for (k, n) in v {
        let _ = write!(s, "<tr><td>{}</td><td>{n}</td></tr>", esc(k));
    }
    s.push_str("</table>");
    s
}

/// Calls `f` with the first [`ROW_SAMPLE`] rows of the parts under `dir/sub`, in part order; returns how many.
fn scan_rows(dir: &Path, sub: &str, f: &mut dyn FnMut(&TripletRow)) -> Result<usize, PipelineError> {
    let mut read = 0;
    for p in parts(dir, sub).map_err(|e| PipelineError::Internal(e.to_string()))? {
        for r in first_rows(&p, ROW_SAMPLE - read).map_err(|e| PipelineError::Internal(e.to_string()))? {
            f(&r);
            read += 1;
        }
        if read >= ROW_SAMPLE {
            break;
        }
    }
    Ok(read)
}

/// Writes the report of `dir` to `out`; `samples` rows in the gallery; `decisions`: rows per latest review decision
/// (`review.sqlite`, read by the caller), shown when not empty.
pub fn write_html(
    dir: &Path,
    out: &Path,
    samples: usize,
    decisions: &BTreeMap<String, u64>,
) -> Result<HtmlSummary, PipelineError> {
    let has = |p: &str| dir.join(p).exists();
    if !dir.is_dir() || !(has("manifest.json") || has("stats.json") || has("triplets") || has("grounded_reports")) {
        return Err(PipelineError::Usage(format!(
            "{}: not a medgrain output folder (no manifest.json, stats.json, triplets/ or grounded_reports/)",
            dir.display()
        )));
    }
    let stats: Option<Stats> = std::fs::read(dir.join("stats.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut sum = HtmlSummary::default();
    let mut body = String::new();
    let mut plot = |svg: Option<String>, body: &mut String, extra: String| {
        if let Some(s) = svg {
            sum.plots += 1;
            let _ = write!(body, "<div class=\"plot\">{s}{extra}</div>");
        }
    };
    if let Some(st) = &stats {
        let _ = write!(
            body,
            "<section id=\"overview\"><h2>Triplets</h2><p>{} samples, {} rows, {} failed, {} ROIs, {} rows failing QC</p>",
            st.samples, st.rows, st.failed, st.rois, st.qc_failed
        );
        for (title, m) in [
            ("Rows by modality", &st.by_modality),
            ("Rows by organ", &st.by_organ),
            ("Rows by disease", &st.by_disease),
            ("Rows by source", &st.by_source),
            ("Rows by split", &st.by_split),
            ("QC flags by kind", &st.qc_flags),
            ("Failures by stage", &st.failures_by_stage),
        ] {
            plot(bars(title, m, 20)?, &mut body, table(title, m));
        }
        plot(
            hist("ROIs per image", &st.rois_per_sample, &|v| format!("{v}"))?,
            &mut body,
            String::new(),
        );
        plot(
            hist("ROI area (fraction of the image)", &st.roi_area_fraction, &|v| {
                format!("{v}")
            })?,
            &mut body,
            String::new(),
        );
        plot(
            hist("Description length (words)", &st.description_words, &|v| format!("{v}"))?,
            &mut body,
            String::new(),
        );
        body.push_str("</section>");
    }
    if !decisions.is_empty() {
        body.push_str("<section id=\"review\"><h2>Review decisions</h2>");
        plot(
            bars("Rows by latest review decision", decisions, 10)?,
            &mut body,
            table("review decisions", decisions),
        );
        body.push_str("</section>");
    }
    // QC flags by source, from a sample of rows
    let rows = sample_rows(dir, "triplets", samples.max(200))?;
    if !rows.is_empty() {
        let mut by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in &rows {
            let src = r.str("source").unwrap_or("?").to_string();
            let e = by.entry(src).or_default();
            let flags = r
                .fields
                .get("qc")
                .and_then(|q| q.get("flags"))
                .and_then(Value::as_array);
            for f in flags.into_iter().flatten().filter_map(Value::as_str) {
                let kind = f.split(':').next().unwrap_or(f).to_string();
                *e.entry(kind).or_insert(0) += 1;
            }
        }
        let _ = write!(
            body,
            "<section id=\"qc-by-source\"><h2>QC flags by source ({} sampled rows)</h2>",
            rows.len()
        );
        for (src, m) in &by {
            if m.is_empty() {
                let _ = write!(body, "<p>{}: no QC flags</p>", esc(src));
            } else {
                plot(
                    bars(&format!("QC flags, {}", safe(src)), m, 20)?,
                    &mut body,
                    table(src, m),
                );
            }
        }
        body.push_str("</section>");
    }
    // grounded reports: abnormal rate per region
    let mut abnormal: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    sum.grounded_rows_read = scan_rows(dir, "grounded_reports", &mut |r| {
        let e = abnormal
            .entry(r.str("region").unwrap_or("?").to_string())
            .or_insert((0, 0));
        e.1 += 1;
        e.0 += u64::from(r.fields.get("abnormal").and_then(Value::as_bool).unwrap_or(false));
    })?;
    if !abnormal.is_empty() {
        let rate: BTreeMap<String, u64> = abnormal
            .iter()
            .map(|(k, (a, n))| (k.clone(), (100 * a).checked_div(*n).unwrap_or(0)))
            .collect();
        let counts: BTreeMap<String, u64> = abnormal
            .iter()
            .map(|(k, (a, n))| (format!("{k} ({a} of {n})"), *a))
            .collect();
        let _ = write!(
            body,
            "<section id=\"grounded\"><h2>Grounded reports ({} sentences read)</h2>",
            sum.grounded_rows_read
        );
        plot(
            bars("Abnormal sentences per region (%)", &rate, 30)?,
            &mut body,
            table("abnormal sentences", &counts),
        );
        body.push_str("</section>");
    }
    // VQA: question types and the answer balance per type
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut yes_no: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    sum.vqa_rows_read = scan_rows(dir, "vqa", &mut |r| {
        let t = r.str("question_type").unwrap_or("?").to_string();
        *types.entry(t.clone()).or_insert(0) += 1;
        match r.str("answer").map(|a| a.trim().to_ascii_lowercase()).as_deref() {
            Some("yes") => yes_no.entry(t).or_insert((0, 0)).0 += 1,
            Some("no") => yes_no.entry(t).or_insert((0, 0)).1 += 1,
            _ => {}
        }
    })?;
    if !types.is_empty() {
        let _ = write!(
            body,
            "<section id=\"vqa\"><h2>VQA ({} questions read)</h2>",
            sum.vqa_rows_read
        );
        plot(
            bars("Questions by type", &types, 20)?,
            &mut body,
            table("questions by type", &types),
        );
        let share: BTreeMap<String, u64> = yes_no
            .iter()
            .map(|(k, (y, n))| (k.clone(), (100 * y).checked_div(y + n).unwrap_or(0)))
            .collect();
        let detail: BTreeMap<String, u64> = yes_no
            .iter()
            .map(|(k, (y, n))| (format!("{k}: yes {y} / no {n}"), y + n))
            .collect();
        plot(
            bars("Yes answers among yes/no answers per type (%)", &share, 20)?,
            &mut body,
            table("yes/no answers", &detail),
        );
        body.push_str("</section>");
    }
    // gallery: round-robin over modalities, rows with ROIs first
    let gallery: Vec<&TripletRow> = {
        let mut by: BTreeMap<&str, Vec<&TripletRow>> = BTreeMap::new();
        for r in rows
            .iter()
            .filter(|r| !r.rois().is_empty())
            .chain(rows.iter().filter(|r| r.rois().is_empty()))
        {
            by.entry(r.str("modality").unwrap_or("?")).or_default().push(r);
        }
        let mut picked = Vec::new();
        let mut k = 0;
        while picked.len() < samples && by.values().any(|v| k < v.len()) {
            for v in by.values() {
                if let Some(r) = v.get(k) {
                    if picked.len() < samples {
                        picked.push(*r);
                    }
                }
            }
            k += 1;
        }
        picked
    };
    if !gallery.is_empty() {
        let _ = write!(
            body,
            "<section id=\"gallery\"><h2>Gallery ({} samples, ROI outlines from the masks)</h2><div class=\"grid\">",
            gallery.len()
        );
        for r in &gallery {
            gallery_item(r, &mut body);
            sum.gallery += 1;
        }
        body.push_str("</div></section>");
    }
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>medgrain report: {}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style></head><body>\
         <h1>medgrain dataset report</h1><p class=\"dir\">{}</p>{body}</body></html>",
        esc(&dir.display().to_string()),
        esc(&dir.display().to_string())
    );
    sum.bytes = html.len();
    crate::engine::fsio::write_atomic(out, html.as_bytes())?;
    Ok(sum)
}

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}h2{border-bottom:1px solid #ccc;margin-top:1.5em}\
.plot{display:inline-block;vertical-align:top;margin:.5em}.plot table{display:none}\
table.counts{border-collapse:collapse;font-size:.8em}table.counts td{border:1px solid #ddd;padding:1px 4px}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1em}\
figure.sample{margin:0;border:1px solid #ddd;padding:.5em}.frame{position:relative;width:100%}\
.frame img{position:absolute;inset:0;width:100%;height:100%;image-rendering:pixelated}\
.frame svg.rois{position:absolute;inset:0;width:100%;height:100%}\
figcaption{font-size:.8em}.facts{padding-left:1em}.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em}\
dl.sections dt{font-weight:bold;margin-top:.3em}dl.sections dd{margin:0}.qc{color:#a40000}";
