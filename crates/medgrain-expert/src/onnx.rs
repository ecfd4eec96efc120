//! `expert:onnx` — a user's 2D ONNX segmentation model as an [`RoiLocator`], run through ONNX Runtime loaded from a
//! shared library at run time (`library` in the config, else `ORT_DYLIB_PATH`; the PyPI `onnxruntime` wheel ships
//! `onnxruntime/capi/libonnxruntime.so.<version>`). The contract a model must meet is in the README ("Expert
//! segmenters"); in short: one float32 input `[N, C, H, W]` (C = 1, or 3 with the grey slice repeated), one output
//! `[N, K, H, W]` or `[N, H, W]` on the input's pixel grid; slices across the volume's superior–inferior axis,
//! stored orientation; overlap tiles (see [`crate::tiling::plan_axis`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use medgrain_ort::ort;
use medgrain_roi::locate::{LocateError, LocatedMask, RoiLocator};
use medgrain_roi::measure::Grid;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};
use serde::{Deserialize, Serialize};

use crate::tiling::{decide, plan_axis, Normalize, Normalizer, OutputKind, TileSpan};

/// The `[onnx]` table of a volume or image source (or the TOML file given to `medgrain locate --onnx`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxConfig {
    /// The model file (relative paths are relative to the config file's folder).
    pub model: PathBuf,
    /// The expert's name: ROIs carry `origin = "expert:<name>"` (default `onnx`).
    #[serde(default)]
    pub name: Option<String>,
    /// The ONNX Runtime shared library (default: `ORT_DYLIB_PATH`).
    #[serde(default)]
    pub library: Option<PathBuf>,
    /// Names of the output classes: one name for a one-channel output; K names for K channels or for label
    /// outputs, the first being the background (never a mask).
    pub classes: Vec<String>,
    #[serde(default)]
    pub normalize: Normalize,
    /// `[centre, width]` for `normalize = "window"`.
    #[serde(default)]
    pub window: Option<[f64; 2]>,
    /// `[mean, std]` applied after `normalize` (ImageNet-style standardisation).
    #[serde(default)]
    pub scale: Option<[f64; 2]>,
    #[serde(default)]
    pub output: OutputKind,
    /// Foreground threshold for one-channel outputs (default 0.5, on the probability).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Tile `[height, width]` for models with free spatial dimensions (default: the whole slice, untiled). A model
    /// with fixed spatial dimensions is always tiled at its own size.
    #[serde(default)]
    pub tile: Option<[usize; 2]>,
    /// Pixels at each tile edge that are read but not written (default when tiling: 16, at most a quarter of the
    /// tile's shorter side).
    #[serde(default)]
    pub tile_margin: Option<usize>,
    /// Tiles per model call when the batch dimension is free (default 4).
    #[serde(default)]
    pub batch: Option<usize>,
    /// Masks with fewer voxels are dropped (default 1).
    #[serde(default)]
    pub min_voxels: Option<u64>,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's own choice).
    #[serde(default)]
    pub threads: Option<usize>,
}

/// Why the ONNX locator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExpertError {
    #[error("onnx config: {0}")]
    Config(String),
    #[error("ONNX Runtime library {path}: {message}")]
    Library { path: PathBuf, message: String },
    #[error("ONNX model {path}: {message}")]
    Model { path: PathBuf, message: String },
}

impl OnnxConfig {
    /// Reads a standalone config file (the `[onnx]` keys at top level); relative paths resolve against its folder.
    pub fn from_file(path: &Path) -> Result<OnnxConfig, ExpertError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ExpertError::Config(format!("{}: {e}", path.display())))?;
        let cfg: OnnxConfig =
            toml::from_str(&text).map_err(|e| ExpertError::Config(format!("{}: {e}", path.display())))?;
        Ok(cfg.resolved(path.parent().unwrap_or(Path::new("."))))
    }

    /// Paths made absolute against `base` (the config file's folder).
    pub fn resolved(mut self, base: &Path) -> OnnxConfig {
        if self.model.is_relative() {
            self.model = base.join(&self.model);
        }
        if let Some(l) = &self.library {
            if l.is_relative() {
                self.library = Some(base.join(l));
            }
        }
        self
    }

    /// Checks what can be checked without loading anything.
    pub fn validate(&self) -> Result<(), ExpertError> {
        let bad = |m: String| Err(ExpertError::Config(m));
        if self.classes.is_empty() {
            return bad("classes: give the output class names (one for a one-channel output)".into());
        }
        if self.normalize == Normalize::Window && !self.window.is_some_and(|[_, w]| w > 0.0) {
            return bad("normalize = \"window\" needs window = [centre, width] with width > 0".into());
        }
        if self.scale.is_some_and(|[_, s]| s == 0.0 || !s.is_finite()) {
            return bad("scale = [mean, std] needs a finite std ≠ 0".into());
        }
        if self.tile.is_some_and(|[h, w]| h == 0 || w == 0) {
            return bad("tile = [height, width] must be positive".into());
        }
        if self.batch == Some(0) {
            return bad("batch must be ≥ 1".into());
        }
        if self
            .name
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.contains(char::is_whitespace))
        {
            return bad("name must be a non-empty word (it becomes origin = \"expert:<name>\")".into());
        }
        Ok(())
    }
}

/// The library path (the config's, else `ORT_DYLIB_PATH`) and the process's ONNX Runtime environment.
fn load_runtime(cfg: &OnnxConfig) -> Result<ort::environment::Environment, ExpertError> {
    let lib = medgrain_ort::library_path(cfg.library.as_deref(), "set `library` in the onnx config or ")?;
    Ok(medgrain_ort::environment(&lib)?)
}

impl From<medgrain_ort::OrtError> for ExpertError {
    fn from(e: medgrain_ort::OrtError) -> Self {
        match e {
            medgrain_ort::OrtError::NotConfigured(m) => ExpertError::Config(format!("no ONNX Runtime library: {m}")),
            medgrain_ort::OrtError::Library { path, message } => ExpertError::Library { path, message },
        }
    }
}

/// A loaded model and what its signature fixes.
pub struct OnnxLocator {
    cfg: OnnxConfig,
    origin: String,
    session: Mutex<Session>,
    input_name: String,
    /// Input channels (1, or 3 for a grey slice repeated).
    channels: usize,
    /// Fixed batch size of the model, if any.
    fixed_batch: Option<usize>,
    /// Fixed spatial size `[H, W]` of the model, if any.
    fixed_tile: Option<[usize; 2]>,
    output_type: TensorElementType,
}

impl std::fmt::Debug for OnnxLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxLocator")
            .field("origin", &self.origin)
            .field("model", &self.cfg.model)
            .field("input", &self.input_name)
            .field("channels", &self.channels)
            .field("fixed_batch", &self.fixed_batch)
            .field("fixed_tile", &self.fixed_tile)
            .finish()
    }
}

fn dims(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    Some((v.tensor_type()?, v.tensor_shape()?.to_vec()))
}

impl OnnxLocator {
    /// Loads ONNX Runtime (once per process) and the model, and checks the model's signature against the contract.
    pub fn new(cfg: OnnxConfig) -> Result<OnnxLocator, ExpertError> {
        cfg.validate()?;
        let env = load_runtime(&cfg)?;
        let model_err = |message: String| ExpertError::Model {
            path: cfg.model.clone(),
            message,
        };
        if !cfg.model.is_file() {
            return Err(model_err("no such file".into()));
        }
        let mut builder = Session::builder(&env).map_err(|e| model_err(e.to_string()))?;
        if let Some(t) = cfg.threads {
            builder = builder.with_intra_threads(t).map_err(|e| model_err(e.to_string()))?;
        }
        let session = builder
            .commit_from_file(&cfg.model)
            .map_err(|e| model_err(e.to_string()))?;
        let (input_name, (in_type, in_dims)) = match session.inputs() {
            [one] => (
                one.name().to_string(),
                dims(one.dtype()).ok_or_else(|| model_err("its input is not a tensor".into()))?,
            ),
            many => {
                return Err(model_err(format!(
                    "{} inputs; the contract is one image input",
                    many.len()
                )))
            }
        };
        if in_type != TensorElementType::Float32 || in_dims.len() != 4 {
            return Err(model_err(format!(
                "input {input_name:?} is {in_type:?} {in_dims:?}; the contract is float32 [N, C, H, W]"
            )));
        }
        let channels = match in_dims[1] {
            d if d <= 0 => 1,
            1 => 1,
            3 => 3,
            d => return Err(model_err(format!("input has {d} channels; the contract is 1 or 3"))),
        };
        let fixed = |d: i64| (d > 0).then_some(d as usize);
        let fixed_batch = fixed(in_dims[0]);
        let fixed_tile = match (fixed(in_dims[2]), fixed(in_dims[3])) {
            (Some(h), Some(w)) => Some([h, w]),
            (None, None) => None,
            _ => {
                return Err(model_err(format!(
                    "input {in_dims:?} fixes one spatial dimension only; fix both or neither"
                )))
            }
        };
        if let (Some(f), Some(t)) = (fixed_tile, cfg.tile) {
            if f != t {
                return Err(ExpertError::Config(format!(
                    "tile = {t:?} but the model's input is fixed at {f:?}"
                )));
            }
        }
        let (output_type, out_dims) = match session.outputs().first() {
            Some(o) => dims(o.dtype()).ok_or_else(|| model_err("its first output is not a tensor".into()))?,
            None => return Err(model_err("no outputs".into())),
        };
        let label_types = [
            TensorElementType::Float32,
            TensorElementType::Int64,
            TensorElementType::Int32,
            TensorElementType::Uint8,
        ];
        let ok_type = if cfg.output == OutputKind::Labels {
            label_types.contains(&output_type)
        } else {
            output_type == TensorElementType::Float32
        };
        if !ok_type || !(out_dims.len() == 3 || out_dims.len() == 4) {
            return Err(model_err(format!(
                "output is {output_type:?} {out_dims:?}; the contract is float32 [N, K, H, W] or [N, H, W] (labels: an integer or float tensor)"
            )));
        }
        if out_dims.len() == 4 && out_dims[1] > 0 {
            check_classes(&cfg, out_dims[1] as usize)?;
        }
        let origin = format!("expert:{}", cfg.name.as_deref().unwrap_or("onnx"));
        Ok(OnnxLocator {
            cfg,
            origin,
            session: Mutex::new(session),
            input_name,
            channels,
            fixed_batch,
            fixed_tile,
            output_type,
        })
    }

    /// Runs the model on `n` tiles (`[n, channels, th, tw]`, row-major); returns `(k, scores)` with scores
    /// `[n, k, th, tw]`.
    fn run(&self, input: Vec<f32>, n: usize, th: usize, tw: usize) -> Result<(usize, Vec<f32>), String> {
        let tensor = ort::value::Tensor::from_array(([n, self.channels, th, tw], input)).map_err(|e| e.to_string())?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| "the model session was poisoned".to_string())?;
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| e.to_string())?;
        let out = &outputs[0];
        let (shape, values): (Vec<i64>, Vec<f32>) = match self.output_type {
            TensorElementType::Float32 => {
                let (s, v) = out.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
                (s.to_vec(), v.to_vec())
            }
            TensorElementType::Int64 => {
                let (s, v) = out.try_extract_tensor::<i64>().map_err(|e| e.to_string())?;
                (s.to_vec(), v.iter().map(|&x| x as f32).collect())
            }
            TensorElementType::Int32 => {
                let (s, v) = out.try_extract_tensor::<i32>().map_err(|e| e.to_string())?;
                (s.to_vec(), v.iter().map(|&x| x as f32).collect())
            }
            _ => {
                let (s, v) = out.try_extract_tensor::<u8>().map_err(|e| e.to_string())?;
                (s.to_vec(), v.iter().map(|&x| x as f32).collect())
            }
        };
        let k = match shape.as_slice() {
            [b, h, w] if *b as usize == n && *h as usize == th && *w as usize == tw => 1,
            [b, k, h, w] if *b as usize == n && *h as usize == th && *w as usize == tw && *k > 0 => *k as usize,
            other => {
                return Err(format!(
                    "output shape {other:?} for input [{n}, {}, {th}, {tw}]: the contract is [N, K, H, W] or [N, H, W] on the input grid",
                    self.channels
                ))
            }
        };
        Ok((k, values))
    }
}

/// Class names must match the output channels: K names for K > 1 (background first), one or two for one channel.
fn check_classes(cfg: &OnnxConfig, k: usize) -> Result<(), ExpertError> {
    let n = cfg.classes.len();
    let ok = match (cfg.output, k) {
        (OutputKind::Labels, _) => true,
        (_, 1) => n == 1 || n == 2,
        (_, k) => n == k,
    };
    if ok {
        Ok(())
    } else {
        Err(ExpertError::Config(format!(
            "classes has {n} names for a {k}-channel output (give K names, background first; one name for one channel)"
        )))
    }
}

/// The name of class `c ≥ 1` for a `k`-channel output.
fn class_name(cfg: &OnnxConfig, k: usize, c: u32) -> Option<&str> {
    let i = if k == 1 && cfg.output != OutputKind::Labels && cfg.classes.len() == 1 {
        0
    } else {
        c as usize
    };
    cfg.classes.get(i).map(String::as_str)
}

impl RoiLocator for OnnxLocator {
    fn name(&self) -> &str {
        &self.origin
    }

    fn locate(&self, values: &[f64], grid: Grid<'_>) -> Result<Vec<LocatedMask>, LocateError> {
        let fail = |message: String| LocateError {
            locator: self.origin.clone(),
            message,
        };
        let shape = grid.shape;
        let n = shape.iter().product::<usize>();
        if values.len() != n || n == 0 {
            return Err(fail(format!("{} values for a {shape:?} grid", values.len())));
        }
        let axis = if shape[2] == 1 { 2 } else { grid.slice_axis() };
        let (wa, ha) = medgrain_roi::locate::in_plane_axes(axis); // the faster axis is the width
        let (w, h) = (shape[wa], shape[ha]);
        let stride = |a: usize| -> usize { shape[..a].iter().product() };
        let (sw, sh, ss) = (stride(wa), stride(ha), stride(axis));
        let norm = Normalizer::fit(self.cfg.normalize, self.cfg.window, self.cfg.scale, values);
        let [th, tw] = self.fixed_tile.or(self.cfg.tile).unwrap_or([h, w]);
        let tiled = self.fixed_tile.is_some() || self.cfg.tile.is_some();
        let margin = match (tiled, self.cfg.tile_margin) {
            (false, _) => 0,
            (true, Some(m)) => m,
            (true, None) => 16.min(th.min(tw) / 4),
        };
        let plan = |len: usize, tile: usize| {
            plan_axis(len, tile, margin).ok_or_else(|| {
                fail(format!(
                    "tile_margin {margin} leaves no core in a tile of {tile} pixels"
                ))
            })
        };
        let (rows, cols) = (plan(h, th)?, plan(w, tw)?);
        let tiles: Vec<(TileSpan, TileSpan)> = rows.iter().flat_map(|r| cols.iter().map(move |c| (*r, *c))).collect();
        let batch = self.fixed_batch.unwrap_or(self.cfg.batch.unwrap_or(4).max(1));
        let threshold = self.cfg.threshold.unwrap_or(0.5);

        let mut classes = vec![0u32; n];
        let mut sums: Vec<(f64, u64, bool)> = Vec::new(); // per class: confidence sum, voxels, has confidence
        let mut k_seen: Option<usize> = None;
        let mut slice = vec![0f32; w * h];
        let plane = th * tw;
        for s in 0..shape[axis] {
            for y in 0..h {
                for x in 0..w {
                    slice[y * w + x] = norm.apply(values[s * ss + y * sh + x * sw]);
                }
            }
            for group in tiles.chunks(batch) {
                let mut input = vec![0f32; batch * self.channels * plane];
                for (t, (r, c)) in group.iter().enumerate() {
                    for ty in 0..th {
                        let y = r.start + ty as isize;
                        if y < 0 || y >= h as isize {
                            continue;
                        }
                        for tx in 0..tw {
                            let x = c.start + tx as isize;
                            if x < 0 || x >= w as isize {
                                continue;
                            }
                            let v = slice[y as usize * w + x as usize];
                            for ch in 0..self.channels {
                                input[(t * self.channels + ch) * plane + ty * tw + tx] = v;
                            }
                        }
                    }
                }
                // a free batch dimension takes only the tiles there are; a fixed one is padded with empty tiles
                let run_n = if self.fixed_batch.is_some() { batch } else { group.len() };
                input.truncate(run_n * self.channels * plane);
                let (k, out) = self.run(input, run_n, th, tw).map_err(fail)?;
                if k_seen.is_none() {
                    check_classes(&self.cfg, k).map_err(|e| fail(e.to_string()))?;
                    k_seen = Some(k);
                }
                let mut scores = vec![0f32; k];
                for (t, (r, c)) in group.iter().enumerate() {
                    for ty in r.from..r.from + r.count {
                        let y = r.to + ty - r.from;
                        for tx in c.from..c.from + c.count {
                            let x = c.to + tx - c.from;
                            for (ch, sc) in scores.iter_mut().enumerate() {
                                *sc = out[(t * k + ch) * plane + ty * tw + tx];
                            }
                            let (class, p) = decide(&scores, self.cfg.output, threshold);
                            if class == 0 {
                                continue;
                            }
                            classes[s * ss + y * sh + x * sw] = class;
                            if sums.len() <= class as usize {
                                sums.resize(class as usize + 1, (0.0, 0, false));
                            }
                            let e = &mut sums[class as usize];
                            e.0 += p.unwrap_or(0.0);
                            e.1 += 1;
                            e.2 = p.is_some();
                        }
                    }
                }
            }
        }
        let k = k_seen.unwrap_or(1);
        let min_voxels = self.cfg.min_voxels.unwrap_or(1).max(1);
        let mut found = Vec::new();
        for (c, &(sum, voxels, has_p)) in sums.iter().enumerate().skip(1) {
            if voxels < min_voxels {
                continue;
            }
            let name = class_name(&self.cfg, k, c as u32).ok_or_else(|| {
                fail(format!(
                    "the model output class {c}, but classes names only {} ({:?})",
                    self.cfg.classes.len(),
                    self.cfg.classes
                ))
            })?;
            found.push(LocatedMask {
                name: name.to_string(),
                mask: classes.iter().map(|&v| v == c as u32).collect(),
                score: has_p.then(|| sum / voxels as f64),
            });
        }
        Ok(found)
    }
}
