//! `medgrain review DIR`: a local web app for looking at a built dataset and deciding on its rows. A random token
//! in the printed URL (kept in a cookie after the first visit) guards every request; pages are rendered on the
//! server with every dataset string HTML-escaped; decisions go to `DIR/review.sqlite` ([`store`]). Nothing is served
//! by file name: samples and images are looked up by row id in an index of the dataset's Parquet parts, so no path
//! from a request ever reaches the file system.

pub mod store;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medgrain_export::export::rows::{first_rows, parts, TripletRow};
use medgrain_export::html::esc;
use medgrain_export::read::{triplet_summaries, TripletSummary};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// DIR cannot be reviewed (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
}

/// Rows per grid page.
pub const PAGE: usize = 48;

const COOKIE: &str = "medgrain_review";

/// Every row's summary columns and where it is: built in the background after the server starts.
struct Dataset {
    summaries: Vec<TripletSummary>,
    /// id → (part, row within the part, position in `summaries`)
    index: HashMap<String, (usize, usize, usize)>,
}

pub struct AppState {
    dir: PathBuf,
    token: String,
    reviewer: String,
    parts: Vec<PathBuf>,
    /// Rows per part, from the Parquet footers (read at start; nothing else is).
    part_rows: Vec<usize>,
    data: std::sync::OnceLock<Dataset>,
    store: Mutex<store::Store>,
}

impl AppState {
    /// The full index, waiting for the background scan when it is not finished.
    /// Called from request handlers only: the wait moves this worker's other tasks elsewhere (`block_in_place`).
    fn data(&self) -> &Dataset {
        if let Some(d) = self.data.get() {
            return d;
        }
        tokio::task::block_in_place(|| loop {
            if let Some(d) = self.data.get() {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        })
    }
}

fn build_index(parts: &[PathBuf]) -> Dataset {
    let mut summaries = Vec::new();
    let mut index = HashMap::new();
    for (k, p) in parts.iter().enumerate() {
        match triplet_summaries(p) {
            Ok(s) => {
                for (r, row) in s.into_iter().enumerate() {
                    index.insert(row.id.clone(), (k, r, summaries.len()));
                    summaries.push(row);
                }
            }
            Err(e) => tracing::warn!(part = %p.display(), "unreadable part left out of the review index: {e}"),
        }
    }
    Dataset { summaries, index }
}

/// Opens DIR for review: the parts' row counts are read from their footers; every part's summary columns (no images)
/// are read by a background thread, which filters, neighbours and lookups by id wait for; the unfiltered grid and
/// links carrying their part and row do not. `review.sqlite` is created.
pub fn open(dir: &Path, token: String, reviewer: String) -> Result<Arc<AppState>, ReviewError> {
    let ps = parts(dir, "triplets").map_err(|e| ReviewError::Io(e.to_string()))?;
    let reports = parts(dir, "grounded_reports").map_err(|e| ReviewError::Io(e.to_string()))?;
    if !dir.join("manifest.json").is_file() || (ps.is_empty() && reports.is_empty()) {
        return Err(ReviewError::Usage(format!(
            "{}: not a medgrain dataset (needs manifest.json and triplets/*.parquet or grounded_reports/*.parquet)",
            dir.display()
        )));
    }
    let mut part_rows = Vec::with_capacity(ps.len());
    for p in &ps {
        part_rows.push(medgrain_export::read::parquet_rows(p).map_err(|e| ReviewError::Io(e.to_string()))? as usize);
    }
    let store = store::Store::open(&dir.join("review.sqlite"))
        .map_err(|e| ReviewError::Io(format!("{}: {e}", dir.join("review.sqlite").display())))?;
    let state = Arc::new(AppState {
        dir: dir.to_path_buf(),
        token,
        reviewer,
        parts: ps,
        part_rows,
        data: std::sync::OnceLock::new(),
        store: Mutex::new(store),
    });
    let bg = state.clone();
    std::thread::spawn(move || {
        let d = build_index(&bg.parts);
        let _ = bg.data.set(d);
    });
    Ok(state)
}

/// The router: every route behind the token check.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(grid))
        .route("/sample/{id}", get(sample))
        .route("/image/{id}", get(image))
        .route("/volume/{id}", get(volume))
        .route("/api/decide", post(decide))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn cookie_token(h: &HeaderMap) -> Option<String> {
    let c = h.get(header::COOKIE)?.to_str().ok()?;
    c.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn eq_const(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 403 unless the request carries the token (query `token=` or the cookie); a valid query token sets the cookie.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(str::to_string);
    let ok_query = from_query.as_deref().is_some_and(|t| eq_const(t, &st.token));
    let ok_cookie = cookie_token(req.headers()).is_some_and(|t| eq_const(&t, &st.token));
    if !(ok_query || ok_cookie) {
        return (StatusCode::FORBIDDEN, "forbidden: open the URL medgrain review printed").into_response();
    }
    let mut resp = next.run(req).await;
    if ok_query && !ok_cookie {
        if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", st.token)) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        ),
    );
    resp
}

/// Percent-encoding for a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize, Clone)]
pub struct Filter {
    modality: Option<String>,
    organ: Option<String>,
    source: Option<String>,
    qc: Option<String>,
    split: Option<String>,
    decision: Option<String>,
    page: Option<usize>,
    /// Where the row is ("PART.ROW"), as grid links say.
    at: Option<String>,
}

impl Filter {
    fn matches(&self, s: &TripletSummary, decision: Option<&str>) -> bool {
        let want = |f: &Option<String>, v: Option<&str>| f.as_deref().is_none_or(|f| f.is_empty() || Some(f) == v);
        want(&self.modality, s.modality.as_deref())
            && want(&self.organ, s.organ.as_deref())
            && want(&self.source, Some(&s.source))
            && want(&self.split, s.split.as_deref())
            && self
                .qc
                .as_deref()
                .is_none_or(|q| q.is_empty() || s.qc_flags.iter().any(|f| f.split(':').next() == Some(q)))
            && self
                .decision
                .as_deref()
                .is_none_or(|d| d.is_empty() || d == decision.unwrap_or("undecided"))
    }

    fn is_empty(&self) -> bool {
        [
            &self.modality,
            &self.organ,
            &self.source,
            &self.qc,
            &self.split,
            &self.decision,
        ]
        .iter()
        .all(|v| v.as_deref().is_none_or(str::is_empty))
    }

    fn query(&self) -> String {
        let mut q = String::new();
        for (k, v) in [
            ("modality", &self.modality),
            ("organ", &self.organ),
            ("source", &self.source),
            ("qc", &self.qc),
            ("split", &self.split),
            ("decision", &self.decision),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(q, "&{k}={}", enc(v));
            }
        }
        q
    }
}

fn decisions(st: &AppState) -> HashMap<String, (String, Option<String>)> {
    st.store.lock().ok().and_then(|s| s.latest().ok()).unwrap_or_default()
}

/// The ids passing the filter, in dataset order.
fn filtered(st: &AppState, f: &Filter, dec: &HashMap<String, (String, Option<String>)>) -> Vec<usize> {
    let data = st.data();
    (0..data.summaries.len())
        .filter(|&i| {
            let s = &data.summaries[i];
            f.matches(s, dec.get(&s.id).map(|d| d.0.as_str()))
        })
        .collect()
}

/// The rows of page `p` of the whole dataset, read from the parts that hold them only: (part, row, summary).
fn unfiltered_page(st: &AppState, p: usize) -> Vec<(usize, usize, TripletSummary)> {
    let (mut skip, mut out) = (p * PAGE, Vec::new());
    for (k, &n) in st.part_rows.iter().enumerate() {
        if skip >= n {
            skip -= n;
            continue;
        }
        let Ok(rows) = triplet_summaries(&st.parts[k]) else {
            continue;
        };
        for (r, s) in rows.into_iter().enumerate().skip(skip) {
            out.push((k, r, s));
            if out.len() == PAGE {
                return out;
            }
        }
        skip = 0;
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{CSS}</style></head>\
         <body>{body}</body></html>",
        esc(title)
    ))
}

async fn grid(State(st): State<Arc<AppState>>, Query(f): Query<Filter>) -> Html<String> {
    let dec = decisions(&st);
    // the unfiltered grid reads only the parts its page lies in; a filter needs the full index
    let (total, p, shown): (usize, usize, Vec<(usize, usize, TripletSummary)>) = if f.is_empty() {
        let total: usize = st.part_rows.iter().sum();
        let p = f.page.unwrap_or(0).min(total.div_ceil(PAGE).max(1) - 1);
        (total, p, unfiltered_page(&st, p))
    } else {
        let ids = filtered(&st, &f, &dec);
        let p = f.page.unwrap_or(0).min(ids.len().div_ceil(PAGE).max(1) - 1);
        let data = st.data();
        let shown = ids
            .iter()
            .skip(p * PAGE)
            .take(PAGE)
            .map(|&i| {
                let (k, r, _) = data.index[&data.summaries[i].id];
                (k, r, data.summaries[i].clone())
            })
            .collect();
        (ids.len(), p, shown)
    };
    let pages = total.div_ceil(PAGE).max(1);
    let mut body = String::from("<h1>medgrain review</h1><form method=\"get\" class=\"filters\">");
    let indexed = st.data.get();
    if indexed.is_none() {
        body.push_str(
            "<p class=\"note\">indexing the dataset: filter values are those of this page until it is done</p>",
        );
    }
    let options = |pick: &dyn Fn(&TripletSummary) -> Vec<String>| -> BTreeSet<String> {
        match indexed {
            Some(d) => d.summaries.iter().flat_map(pick).collect(),
            None => shown.iter().flat_map(|(_, _, s)| pick(s)).collect(),
        }
    };
    let selects: [(&str, BTreeSet<String>, &Option<String>); 6] = [
        (
            "modality",
            options(&|s| s.modality.iter().cloned().collect()),
            &f.modality,
        ),
        ("organ", options(&|s| s.organ.iter().cloned().collect()), &f.organ),
        ("source", options(&|s| vec![s.source.clone()]), &f.source),
        (
            "qc",
            options(&|s| {
                s.qc_flags
                    .iter()
                    .map(|q| q.split(':').next().unwrap_or(q).to_string())
                    .collect()
            }),
            &f.qc,
        ),
        ("split", options(&|s| s.split.iter().cloned().collect()), &f.split),
        (
            "decision",
            ["accepted", "rejected", "edited", "undecided"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            &f.decision,
        ),
    ];
    for (name, opts, cur) in selects {
        let _ = write!(
            body,
            "<label>{name} <select name=\"{name}\"><option value=\"\">any</option>"
        );
        for o in opts {
            let sel = if cur.as_deref() == Some(o.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(body, "<option value=\"{}\"{sel}>{}</option>", esc(&o), esc(&o));
        }
        body.push_str("</select></label> ");
    }
    let _ = write!(
        body,
        "<button type=\"submit\">filter</button></form><p class=\"count\">{} rows · page {} of {pages}</p><div class=\"grid\">",
        total,
        p + 1
    );
    for (k, r, s) in &shown {
        let d = dec.get(&s.id).map(|d| d.0.as_str()).unwrap_or("undecided");
        let _ = write!(
            body,
            "<a class=\"cell {d}\" href=\"/sample/{id}?at={k}.{r}{q}\"><img loading=\"lazy\" alt=\"\" \
             src=\"/image/{id}?at={k}.{r}\"><span>{}</span><span>{} · {} · {}</span><span class=\"decision\">{d}</span></a>",
            esc(&s.id[..s.id.len().min(12)]),
            esc(s.modality.as_deref().unwrap_or("?")),
            esc(s.organ.as_deref().unwrap_or("?")),
            esc(&s.source),
            id = esc(&s.id),
            q = esc(&f.query()),
        );
    }
    body.push_str("</div><p class=\"pager\">");
    if p > 0 {
        let _ = write!(body, "<a href=\"/?page={}{}\">previous</a> ", p - 1, esc(&f.query()));
    }
    if p + 1 < pages {
        let _ = write!(body, "<a href=\"/?page={}{}\">next</a>", p + 1, esc(&f.query()));
    }
    body.push_str("</p>");
    // the grounded-reports volumes, when the dataset has them
    let mut volumes = BTreeSet::new();
    for p in parts(&st.dir, "grounded_reports").unwrap_or_default() {
        if let Ok(v) = medgrain_export::read::string_column(&p, "volume_id") {
            volumes.extend(v.into_iter().flatten());
        }
        if volumes.len() >= 500 {
            break;
        }
    }
    if !volumes.is_empty() {
        body.push_str("<h2>Grounded-report volumes</h2><ul class=\"volumes\">");
        for v in &volumes {
            let _ = write!(body, "<li><a href=\"/volume/{}\">{}</a></li>", esc(&enc(v)), esc(v));
        }
        body.push_str("</ul>");
    }
    page("medgrain review", &body)
}

/// The row with this id: at `at` ("PART.ROW", as grid links carry it) when that row has the id, else by the index.
fn row(st: &AppState, id: &str, at: Option<&str>) -> Option<TripletRow> {
    let hint = at
        .and_then(|a| a.split_once('.'))
        .and_then(|(k, r)| Some((k.parse::<usize>().ok()?, r.parse::<usize>().ok()?)));
    if let Some((k, r)) = hint.filter(|(k, r)| st.part_rows.get(*k).is_some_and(|n| r < n)) {
        if let Some(row) = first_rows(&st.parts[k], r + 1).ok().and_then(|v| v.into_iter().nth(r)) {
            if row.id() == id {
                return Some(row);
            }
        }
    }
    let &(part, r, _) = st.data().index.get(id)?;
    first_rows(&st.parts[part], r + 1).ok()?.into_iter().nth(r)
}

#[derive(Deserialize, Default)]
struct At {
    at: Option<String>,
}

async fn image(State(st): State<Arc<AppState>>, UrlPath(id): UrlPath<String>, Query(a): Query<At>) -> Response {
    match row(&st, &id, a.at.as_deref()) {
        Some(r) => {
            let mime = medgrain_export::html::image_mime(&r.image);
            ([(header::CONTENT_TYPE, mime)], Body::from(r.image)).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such sample").into_response(),
    }
}

const COLOURS: [&str; 6] = ["#ff0000", "#ffa500", "#00ff00", "#00bfff", "#ff00ff", "#ffff00"];
const SECTIONS: [&str; 5] = [
    "modality",
    "organ_detection",
    "roi_analysis",
    "lesion_texture",
    "local_global",
];

async fn sample(State(st): State<Arc<AppState>>, UrlPath(id): UrlPath<String>, Query(f): Query<Filter>) -> Response {
    let Some(r) = row(&st, &id, f.at.as_deref()) else {
        return (StatusCode::NOT_FOUND, "no such sample").into_response();
    };
    let dec = decisions(&st);
    // the next and previous rows, as "ID?at=PART.ROW&filter": without a filter from the part row counts (no wait for
    // the index), with one from the filtered list
    let place = |k: usize, r: usize, sid: &str| format!("{}?at={k}.{r}{}", enc(sid), f.query());
    let hint =
        f.at.as_deref()
            .and_then(|a| a.split_once('.'))
            .and_then(|(k, r)| Some((k.parse::<usize>().ok()?, r.parse::<usize>().ok()?)));
    let (next, prev) = match hint {
        Some((k, r)) if f.is_empty() => {
            let start: usize = st.part_rows[..k.min(st.part_rows.len())].iter().sum();
            let pos = start + r;
            // the neighbours are almost always in the same part: read each part's summaries once
            let mut read: Option<(usize, Vec<TripletSummary>)> = None;
            let mut at_pos = |pos: usize| -> String {
                let mut skip = pos;
                for (k, &n) in st.part_rows.iter().enumerate() {
                    if skip < n {
                        if read.as_ref().is_none_or(|(rk, _)| *rk != k) {
                            read = Some((k, triplet_summaries(&st.parts[k]).unwrap_or_default()));
                        }
                        return read
                            .as_ref()
                            .and_then(|(_, v)| v.get(skip))
                            .map(|s| place(k, skip, &s.id))
                            .unwrap_or_default();
                    }
                    skip -= n;
                }
                String::new()
            };
            let next = at_pos(pos + 1);
            (next, pos.checked_sub(1).map(&mut at_pos).unwrap_or_default())
        }
        _ => {
            let ids = filtered(&st, &f, &dec);
            let data = st.data();
            let at = ids.iter().position(|&i| data.summaries[i].id == id);
            let neighbour = |d: isize| {
                at.and_then(|k| k.checked_add_signed(d))
                    .and_then(|k| ids.get(k))
                    .map(|&i| {
                        let s = &data.summaries[i];
                        let (k, r, _) = data.index[&s.id];
                        place(k, r, &s.id)
                    })
                    .unwrap_or_default()
            };
            (neighbour(1), neighbour(-1))
        }
    };
    let (w, h) = (r.int("width").unwrap_or(1).max(1), r.int("height").unwrap_or(1).max(1));
    let current = dec.get(&id);
    let sections: serde_json::Map<String, Value> = match current {
        Some((d, Some(after))) if d == "edited" => serde_json::from_str(after).unwrap_or_default(),
        _ => r
            .fields
            .get("sections")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<p class=\"nav\"><a href=\"/?{q}\">grid</a> · keys: <b>a</b> accept, <b>r</b> reject, <b>e</b> edit, \
         <b>j</b>/<b>k</b> next/previous</p><h1>{}</h1><p>{} · {} · {} · decision: <b id=\"decision\">{}</b></p>\
         <div class=\"sample\"><div class=\"frame\" style=\"width:{}px;aspect-ratio:{w}/{h}\"><img id=\"image\" alt=\"sample\" \
         src=\"/image/{}\"><svg class=\"rois\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\">",
        esc(&id),
        esc(r.str("modality").unwrap_or("?")),
        esc(r.str("organ").unwrap_or("?")),
        esc(r.str("source").unwrap_or("?")),
        esc(current.map(|c| c.0.as_str()).unwrap_or("undecided")),
        (w * 512 / w.max(h)).max(256),
        esc(&id),
        q = esc(f.query().trim_start_matches('&')),
    );
    let mut facts = String::new();
    for (k, roi) in r.rois().iter().enumerate() {
        let label = roi.get("label").and_then(Value::as_str).unwrap_or("");
        let colour = COLOURS[k % COLOURS.len()];
        if let Some(d) = medgrain_export::html::roi_outline(roi) {
            let _ = write!(
                b,
                "<path id=\"roi-{k}\" class=\"roi\" d=\"{d}\" stroke=\"{colour}\" stroke-width=\"1\" fill=\"none\" \
                 vector-effect=\"non-scaling-stroke\" shape-rendering=\"crispEdges\"/>"
            );
        }
        let _ = write!(
            facts,
            "<li><label><input type=\"checkbox\" checked data-roi=\"roi-{k}\"> <span class=\"swatch\" \
             style=\"background:{colour}\"></span><span class=\"label\">{}</span></label> — {} px, {}, bbox {}</li>",
            esc(label),
            roi.get("area_px").and_then(Value::as_i64).unwrap_or(0),
            esc(roi.get("position").and_then(Value::as_str).unwrap_or("")),
            esc(&roi.get("bbox_xyxy").map(|v| v.to_string()).unwrap_or_default()),
        );
    }
    let _ = write!(
        b,
        "</svg></div><div class=\"side\"><h2>ROIs</h2><ul class=\"facts\">{facts}</ul>"
    );
    let flags: Vec<String> = r
        .fields
        .get("qc")
        .and_then(|q| q.get("flags"))
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).map(esc).collect())
        .unwrap_or_default();
    let _ = write!(
        b,
        "<h2>QC</h2><p class=\"qc\">{}</p>",
        if flags.is_empty() {
            "no flags".into()
        } else {
            flags.join(", ")
        }
    );
    b.push_str("<h2>Sections</h2><form id=\"sections\">");
    for k in SECTIONS {
        let t = sections.get(k).and_then(Value::as_str).unwrap_or("");
        let _ = write!(
            b,
            "<label>{}<textarea name=\"{k}\" rows=\"3\" readonly>{}</textarea></label>",
            esc(&k.replace('_', " ")),
            esc(t)
        );
    }
    b.push_str("<button type=\"button\" id=\"save\" disabled>save edit (ctrl+enter)</button></form><h2>Knowledge</h2><ul class=\"knowledge\">");
    for kref in r
        .fields
        .get("knowledge")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            b,
            "<li><b>{}</b> {}</li>",
            esc(kref.get("id").and_then(Value::as_str).unwrap_or("")),
            esc(kref.get("text").and_then(Value::as_str).unwrap_or(""))
        );
    }
    let before = serde_json::to_string(&sections).unwrap_or_default();
    let _ = write!(
        b,
        "</ul></div></div><script>const TOKEN={}, ME={}, NEXT={}, PREV={}, Q={}, BEFORE={};{JS}</script>",
        js_str(&st.token),
        js_str(&id),
        js_str(&next),
        js_str(&prev),
        js_str(f.query().trim_start_matches('&')),
        js_str(&before),
    );
    page(&format!("sample {id}"), &b).into_response()
}

/// A JSON string literal safe inside a <script> element.
fn js_str(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[derive(Deserialize)]
struct Decide {
    id: String,
    decision: String,
    sections: Option<serde_json::Map<String, Value>>,
}

/// POST /api/decide: the token also in the `x-review-token` header (a cross-site form cannot set it).
async fn decide(State(st): State<Arc<AppState>>, headers: HeaderMap, Json(d): Json<Decide>) -> Response {
    let header_ok = headers
        .get("x-review-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| eq_const(t, &st.token));
    if !header_ok {
        return (StatusCode::FORBIDDEN, "forbidden").into_response();
    }
    let Some(r) = row(&st, &d.id, None) else {
        return (StatusCode::NOT_FOUND, "no such sample").into_response();
    };
    if !matches!(d.decision.as_str(), "accepted" | "rejected" | "edited") {
        return (StatusCode::BAD_REQUEST, "decision: accepted, rejected or edited").into_response();
    }
    let original = r.fields.get("sections").cloned().unwrap_or(Value::Null).to_string();
    let after = match (&d.decision[..], &d.sections) {
        ("edited", Some(s)) => {
            if s.keys().any(|k| !SECTIONS.contains(&k.as_str())) || s.values().any(|v| !v.is_string()) {
                return (StatusCode::BAD_REQUEST, "sections: the five section names, text values").into_response();
            }
            Some(Value::Object(s.clone()).to_string())
        }
        ("edited", None) => return (StatusCode::BAD_REQUEST, "an edit needs sections").into_response(),
        _ => None,
    };
    let res = st
        .store
        .lock()
        .map_err(|_| "store poisoned".to_string())
        .and_then(|mut s| {
            s.decide(&d.id, &d.decision, &st.reviewer, Some(&original), after.as_deref())
                .map_err(|e| e.to_string())
        });
    match res {
        Ok(()) => Json(serde_json::json!({"ok": true})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// Accepted and edited rows: id → the sections to export (the edit's, or `None` to keep the row's).
pub fn accepted(dir: &Path) -> Result<BTreeMap<String, Option<String>>, ReviewError> {
    let path = dir.join("review.sqlite");
    if !path.is_file() {
        return Err(ReviewError::Usage(format!(
            "{}: no review.sqlite (run medgrain review first)",
            dir.display()
        )));
    }
    let s = store::Store::open(&path).map_err(|e| ReviewError::Io(e.to_string()))?;
    Ok(s.latest()
        .map_err(|e| ReviewError::Io(e.to_string()))?
        .into_iter()
        .filter(|(_, (d, _))| d != "rejected")
        .map(|(k, (d, a))| (k, if d == "edited" { a } else { None }))
        .collect())
}

/// Rows per latest decision in `DIR/review.sqlite` (empty when there is none).
pub fn decision_counts(dir: &Path) -> Result<BTreeMap<String, u64>, ReviewError> {
    let path = dir.join("review.sqlite");
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let s = store::Store::open(&path).map_err(|e| ReviewError::Io(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (_, (d, _)) in s.latest().map_err(|e| ReviewError::Io(e.to_string()))? {
        *out.entry(d).or_insert(0) += 1;
    }
    Ok(out)
}

/// Every row of the parts under `sub` whose `volume_id` is `id`.
fn volume_rows(dir: &Path, sub: &str, id: &str) -> Vec<TripletRow> {
    let mut out = Vec::new();
    for p in parts(dir, sub).unwrap_or_default() {
        let _ = medgrain_export::export::rows::for_each_row(&p, &mut |r| {
            if r.str("volume_id") == Some(id) {
                out.push(r);
            }
            Ok(())
        });
    }
    out
}

/// A relative path from the dataset's own rows, refused if it could leave its root.
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    ok.then(|| root.join(p))
}

/// Up to three axial slices of the volume (those the masks cover most), windowed for the mediastinum, each with the
/// masks' outlines: (PNG bytes, width, height, [(mask name, SVG path)]).
type SliceView = (Vec<u8>, usize, usize, Vec<(String, String)>);

fn volume_slices(volume: &Path, masks: &[(String, PathBuf)]) -> Result<Vec<SliceView>, String> {
    use medgrain_imaging::render::{apply_window, ct_window, Plane, SliceLayout};
    let img = medgrain_imaging::nifti_read::read_nifti(volume).map_err(|e| e.to_string())?;
    let sh = &img.header.shape;
    if sh.len() < 3 || sh[3..].iter().any(|&d| d != 1) {
        return Err(format!("{}: not a 3D volume", volume.display()));
    }
    let shape = [sh[0], sh[1], sh[2]];
    let (slope, inter) = if img.header.scl_slope == 0.0 {
        (1.0, 0.0)
    } else {
        (img.header.scl_slope, img.header.scl_inter)
    };
    let values: Vec<f64> = img.voxels.values().map(|v| v * slope + inter).collect();
    let layout = SliceLayout::new(Plane::Axial, shape, &img.header.best_affine());
    let mut mask_data = Vec::new();
    for (name, p) in masks {
        if let Ok(m) = medgrain_imaging::nifti_read::read_nifti(p) {
            if m.header.shape.iter().take(3).copied().eq(shape.iter().copied()) {
                mask_data.push((name.clone(), m.voxels.values().map(|v| v > 0.5).collect::<Vec<bool>>()));
            }
        }
    }
    // slices ranked by the mask voxels they hold
    let mut cover = vec![0usize; layout.slices];
    for (_, m) in &mask_data {
        for (s, c) in cover.iter_mut().enumerate() {
            *c += layout.sample(m, shape, s).iter().filter(|v| **v).count();
        }
    }
    let mut order: Vec<usize> = (0..layout.slices).collect();
    order.sort_by(|a, b| cover[*b].cmp(&cover[*a]).then(a.cmp(b)));
    let mut picked: Vec<usize> = Vec::new();
    for s in order {
        if picked.len() == 3 {
            break;
        }
        if picked.iter().all(|p| p.abs_diff(s) > layout.slices / 8) {
            picked.push(s);
        }
    }
    picked.sort();
    let (c, w) = ct_window("mediastinum").unwrap_or((40.0, 400.0));
    let mut out = Vec::new();
    for s in picked {
        let px: Vec<u8> = layout
            .sample(&values, shape, s)
            .iter()
            .map(|v| apply_window(*v, c, w))
            .collect();
        let png = medgrain_imaging::encode_png(layout.width as u32, layout.height as u32, 1, &px)
            .map_err(|e| e.to_string())?;
        let outlines = mask_data
            .iter()
            .map(|(n, m)| {
                (
                    n.clone(),
                    medgrain_roi::rle::outline_path(&layout.sample(m, shape, s), layout.height, layout.width),
                )
            })
            .filter(|(_, d)| !d.is_empty())
            .collect();
        out.push((png, layout.width, layout.height, outlines));
    }
    Ok(out)
}

/// The grounded-reports page of one volume: its report's sentences with their anatomy paths, a few slices with the
/// organ masks outlined, and its VQA pairs. Only volume ids the dataset's own rows name are served.
async fn volume(State(st): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    let rows = volume_rows(&st.dir, "grounded_reports", &id);
    if rows.is_empty() {
        return (StatusCode::NOT_FOUND, "no such volume").into_response();
    }
    let qa = volume_rows(&st.dir, "vqa", &id);
    let mut b = format!(
        "<p class=\"nav\"><a href=\"/\">grid</a></p><h1>{}</h1><h2>Report</h2><table class=\"report\">\
                         <tr><th>anatomy</th><th>sentence</th><th>abnormal</th><th>negated</th></tr>",
        esc(&id)
    );
    let mut masks: BTreeMap<String, PathBuf> = BTreeMap::new();
    let inputs = medgrain_export::export::rows::reports_inputs(&st.dir);
    for r in &rows {
        let flag = |k: &str| r.fields.get(k).and_then(Value::as_bool).unwrap_or(false);
        let _ = write!(
            b,
            "<tr class=\"sentence\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r.str("anatomy").unwrap_or("")),
            esc(r.str("sentence").unwrap_or("")),
            if flag("abnormal") { "yes" } else { "no" },
            if flag("negated") { "yes" } else { "no" }
        );
        if let (Some(m), Some(inp)) = (r.str("mask_ref"), &inputs) {
            if let Some(p) = inside(&inp.root, m) {
                let name = Path::new(m).file_name().and_then(|n| n.to_str()).unwrap_or(m);
                masks.insert(name.trim_end_matches(".gz").trim_end_matches(".nii").to_string(), p);
            }
        }
    }
    b.push_str("</table><h2>Slices</h2>");
    let vol = inputs.as_ref().and_then(|i| inside(&i.volumes, &id));
    match vol.map(|v| volume_slices(&v, &masks.into_iter().collect::<Vec<_>>())) {
        Some(Ok(slices)) => {
            for (png, w, h, outlines) in slices {
                let _ = write!(
                    b,
                    "<div class=\"frame slice\" style=\"width:{}px;aspect-ratio:{w}/{h}\"><img alt=\"slice\" src=\"data:image/png;base64,{}\">\
                     <svg class=\"rois\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\">",
                    (w * 2).min(512),
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &png)
                );
                for (k, (name, d)) in outlines.iter().enumerate() {
                    let _ = write!(
                        b,
                        "<path class=\"organ\" data-label=\"{}\" d=\"{d}\" stroke=\"{}\" stroke-width=\"1\" fill=\"none\" \
                         vector-effect=\"non-scaling-stroke\"><title>{}</title></path>",
                        esc(name),
                        COLOURS[k % COLOURS.len()],
                        esc(name)
                    );
                }
                b.push_str("</svg></div>");
            }
        }
        Some(Err(e)) => {
            let _ = write!(b, "<p class=\"qc\">the volume cannot be shown: {}</p>", esc(&e));
        }
        None => b.push_str("<p class=\"qc\">the volume's input folder is not known (no inputs in manifest.json)</p>"),
    }
    b.push_str("<h2>VQA</h2><table class=\"vqa\"><tr><th>type</th><th>question</th><th>answer</th></tr>");
    for q in &qa {
        let _ = write!(
            b,
            "<tr class=\"qa\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(q.str("question_type").unwrap_or("")),
            esc(q.str("question").unwrap_or("")),
            esc(q.str("answer").unwrap_or(""))
        );
    }
    b.push_str("</table>");
    page(&format!("volume {id}"), &b).into_response()
}

/// Serves until the process is stopped.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

const JS: &str = r##"
function go(path) { if (path) location.href = "/sample/" + path; }
async function decide(decision, sections) {
  const r = await fetch("/api/decide", {method: "POST", headers: {"Content-Type": "application/json",
      "x-review-token": TOKEN}, body: JSON.stringify({id: ME, decision, sections})});
  if (!r.ok) { alert("not saved: " + r.status); return false; }
  document.getElementById("decision").textContent = decision;
  return true;
}
let editing = false;
function startEdit() {
  editing = true;
  document.querySelectorAll("#sections textarea").forEach(t => t.readOnly = false);
  document.getElementById("save").disabled = false;
  document.querySelector("#sections textarea").focus();
}
async function saveEdit() {
  const s = {};
  document.querySelectorAll("#sections textarea").forEach(t => s[t.name] = t.value);
  if (await decide("edited", s)) {
    editing = false;
    document.querySelectorAll("#sections textarea").forEach(t => t.readOnly = true);
    document.getElementById("save").disabled = true;
  }
}
document.getElementById("save").addEventListener("click", saveEdit);
document.querySelectorAll("input[data-roi]").forEach(c => c.addEventListener("change",
  () => document.getElementById(c.dataset.roi).style.display = c.checked ? "" : "none"));
document.addEventListener("keydown", async (e) => {
  if (editing) { if (e.key === "Enter" && e.ctrlKey) { e.preventDefault(); await saveEdit(); } return; }
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (e.key === "a") { if (await decide("accepted")) go(NEXT); }
  else if (e.key === "r") { if (await decide("rejected")) go(NEXT); }
  else if (e.key === "e") { e.preventDefault(); startEdit(); }
  else if (e.key === "j") go(NEXT);
  else if (e.key === "k") go(PREV);
});
"##;

const CSS: &str = "body{font-family:sans-serif;margin:1em;color:#222}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:.6em}\
.cell{display:flex;flex-direction:column;border:2px solid #ddd;padding:4px;text-decoration:none;color:#222;font-size:.75em}\
.cell img{width:100%;image-rendering:pixelated}.cell.accepted{border-color:#4e9a06}.cell.rejected{border-color:#a40000}.cell.edited{border-color:#3465a4}\
.sample{display:flex;gap:1.5em;align-items:flex-start}.frame{position:relative;flex:none}\
.frame img{position:absolute;inset:0;width:100%;height:100%;image-rendering:pixelated}\
.frame svg.rois{position:absolute;inset:0;width:100%;height:100%}.side{max-width:640px}\
textarea{width:100%;font-family:inherit}.frame.slice{display:inline-block;margin:.3em}\
table.report td,table.vqa td{border-bottom:1px solid #eee;padding:2px 6px;font-size:.9em}.swatch{display:inline-block;width:.8em;height:.8em;margin:0 .3em}.qc{color:#a40000}";
