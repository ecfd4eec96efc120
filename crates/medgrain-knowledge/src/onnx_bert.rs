//! A BERT encoder (the all-MiniLM-L6-v2 family: post-norm layers, exact-erf GELU, absolute positions) written as
//! an ONNX graph from the model folder's `config.json` and `model.safetensors`, in memory, so ONNX Runtime can run
//! the same weights candle runs — nothing is downloaded and no exported `.onnx` file is needed. The graph is the
//! arithmetic of Hugging Face's `BertModel` with standard opset-17 operators (Gather, MatMul, Add, Reshape,
//! Transpose, Softmax, Erf, LayerNormalization); ONNX Runtime's optimiser fuses them (GELU, layer norm, MatMul+Add).
//!
//! Inputs: `input_ids`, `token_type_ids`, `position_ids` (int64 `[batch, seq]`) and `attention_bias` (float32
//! `[batch, 1, 1, seq]`: 0 for real tokens, the most negative float for padding, as `BertModel` adds). Output:
//! `last_hidden_state` (float32 `[batch, seq, hidden]`); pooling is the caller's.
//!
//! The protobuf is written by hand (a few message types of `onnx.proto`; field numbers checked against the `onnx`
//! package's descriptors), and the test suite loads the result with ONNX Runtime and compares its sentence vectors
//! with sentence-transformers'.

use crate::KnowledgeError;
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// Graph input and output names.
pub const INPUT_IDS: &str = "input_ids";
pub const TOKEN_TYPE_IDS: &str = "token_type_ids";
pub const POSITION_IDS: &str = "position_ids";
pub const ATTENTION_BIAS: &str = "attention_bias";
pub const OUTPUT: &str = "last_hidden_state";

fn merr(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::Model(e.to_string())
}

/// A protobuf message being written (wire format only: varints, length-delimited fields, fixed32).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u64) {
        self.varint(((field as u64) << 3) | wire);
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(&mut self, field: u32, m: &Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
    fn float(&mut self, field: u32, f: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&f.to_le_bytes());
        self
    }
}

// onnx.proto element types and attribute types.
const FLOAT: i64 = 1;
const INT64: i64 = 7;
const ATTR_FLOAT: i64 = 1;
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

enum Attr {
    Int(&'static str, i64),
    Float(&'static str, f32),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    fn encode(&self) -> Pb {
        let mut a = Pb::default();
        match self {
            Attr::Int(n, v) => a.str(1, n).int(3, *v).int(20, ATTR_INT),
            Attr::Float(n, v) => a.str(1, n).float(2, *v).int(20, ATTR_FLOAT),
            Attr::Ints(n, vs) => {
                a.str(1, n);
                for v in vs {
                    a.int(8, *v);
                }
                a.int(20, ATTR_INTS)
            }
        };
        a
    }
}

/// Nodes and initializers of the graph being built, each list already encoded as `GraphProto` fields (node = 1,
/// initializer = 5) so the weights are copied once into it; node outputs are named `t<N>`.
#[derive(Default)]
struct Graph {
    nodes: Pb,
    initializers: Pb,
    count: usize,
}

impl Graph {
    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let out = format!("t{}", self.count + 1);
        self.node_to(op, inputs, attrs, &out);
        out
    }
    fn node_to(&mut self, op: &str, inputs: &[&str], attrs: &[Attr], out: &str) {
        self.count += 1;
        let mut n = Pb::default();
        for i in inputs {
            n.str(1, i);
        }
        n.str(2, out).str(3, &format!("n{}_{op}", self.count)).str(4, op);
        for a in attrs {
            n.msg(5, &a.encode());
        }
        self.nodes.msg(1, &n);
    }
    /// A `TensorProto` initializer whose `raw_data` is `raw` (little-endian values, `bytes` of them).
    fn tensor(&mut self, name: &str, dims: &[usize], elem: i64, bytes: usize, raw: impl Iterator<Item = u8>) -> String {
        let mut head = Pb::default();
        for d in dims {
            head.int(1, *d as i64);
        }
        head.int(2, elem).str(8, name);
        head.key(9, 2);
        head.varint(bytes as u64);
        let init = &mut self.initializers;
        init.key(5, 2);
        init.varint((head.0.len() + bytes) as u64);
        init.0.extend_from_slice(&head.0);
        let before = init.0.len();
        init.0.extend(raw);
        debug_assert_eq!(init.0.len() - before, bytes);
        name.to_string()
    }
    fn f32s(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        self.tensor(
            name,
            dims,
            FLOAT,
            data.len() * 4,
            data.iter().flat_map(|x| x.to_le_bytes()),
        )
    }
    fn i64s(&mut self, name: &str, data: &[i64]) -> String {
        self.tensor(
            name,
            &[data.len()],
            INT64,
            data.len() * 8,
            data.iter().flat_map(|x| x.to_le_bytes()),
        )
    }
    fn scalar(&mut self, name: &str, v: f32) -> String {
        self.tensor(name, &[], FLOAT, 4, v.to_le_bytes().into_iter())
    }
}

fn value_info(name: &str, elem: i64, dims: &[&str]) -> Pb {
    let mut shape = Pb::default();
    for d in dims {
        let mut dim = Pb::default();
        match d.parse::<i64>() {
            Ok(v) => dim.int(1, v),
            Err(_) => dim.str(2, d),
        };
        shape.msg(1, &dim);
    }
    let mut tensor = Pb::default();
    tensor.int(1, elem).msg(2, &shape);
    let mut ty = Pb::default();
    ty.msg(1, &tensor);
    let mut vi = Pb::default();
    vi.str(1, name).msg(2, &ty);
    vi
}

/// The encoder's shape, from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct BertShape {
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub eps: f32,
}

impl BertShape {
    pub fn from_config(config: &serde_json::Value) -> Result<BertShape, KnowledgeError> {
        let get = |k: &str| {
            config[k]
                .as_u64()
                .filter(|&v| v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    KnowledgeError::Model(format!("config.json: `{k}` is missing or not a positive integer"))
                })
        };
        let shape = BertShape {
            hidden: get("hidden_size")?,
            heads: get("num_attention_heads")?,
            layers: get("num_hidden_layers")?,
            intermediate: get("intermediate_size")?,
            eps: config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
        };
        if !shape.hidden.is_multiple_of(shape.heads) {
            return Err(KnowledgeError::Model(format!(
                "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
                shape.hidden, shape.heads
            )));
        }
        let act = config["hidden_act"].as_str().unwrap_or("gelu");
        if act != "gelu" {
            return Err(KnowledgeError::Model(format!(
                "config.json: hidden_act {act:?}; the ONNX Runtime path implements BERT's exact (erf) \"gelu\" only"
            )));
        }
        if let Some(p) = config["position_embedding_type"].as_str().filter(|p| *p != "absolute") {
            return Err(KnowledgeError::Model(format!(
                "config.json: position_embedding_type {p:?}; the ONNX Runtime path implements \"absolute\" only"
            )));
        }
        Ok(shape)
    }
}

/// Weights by name, as f32, with an optional `bert.` prefix.
struct Weights<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
}

impl Weights<'_> {
    fn get(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>, KnowledgeError> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .st
            .tensor(&full)
            .map_err(|e| KnowledgeError::Model(format!("model.safetensors: {full}: {e}")))?;
        if t.shape() != dims {
            return Err(KnowledgeError::Model(format!(
                "model.safetensors: {full} has shape {:?}, config.json implies {dims:?}",
                t.shape()
            )));
        }
        let data = t.data();
        Ok(match t.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(KnowledgeError::Model(format!(
                    "model.safetensors: {full} is {other:?}; expected a float tensor"
                )))
            }
        })
    }
}

/// A linear layer (`[out, in]` weight, PyTorch's layout) as MatMul by its transpose plus the bias.
fn linear(
    g: &mut Graph,
    w: &Weights,
    name: &str,
    x: &str,
    n_in: usize,
    n_out: usize,
) -> Result<String, KnowledgeError> {
    let weight = w.get(&format!("{name}.weight"), &[n_out, n_in])?;
    let mut t = vec![0f32; weight.len()];
    for o in 0..n_out {
        for i in 0..n_in {
            t[i * n_out + o] = weight[o * n_in + i];
        }
    }
    let wt = g.f32s(&format!("{name}.weight_t"), &[n_in, n_out], &t);
    let b = g.f32s(
        &format!("{name}.bias"),
        &[n_out],
        &w.get(&format!("{name}.bias"), &[n_out])?,
    );
    let m = g.node("MatMul", &[x, &wt], &[]);
    Ok(g.node("Add", &[&m, &b], &[]))
}

fn layer_norm(g: &mut Graph, w: &Weights, name: &str, x: &str, shape: &BertShape) -> Result<String, KnowledgeError> {
    let gamma = g.f32s(
        &format!("{name}.weight"),
        &[shape.hidden],
        &w.get(&format!("{name}.weight"), &[shape.hidden])?,
    );
    let beta = g.f32s(
        &format!("{name}.bias"),
        &[shape.hidden],
        &w.get(&format!("{name}.bias"), &[shape.hidden])?,
    );
    Ok(g.node(
        "LayerNormalization",
        &[x, &gamma, &beta],
        &[Attr::Int("axis", -1), Attr::Float("epsilon", shape.eps)],
    ))
}

/// The ONNX model (serialised `ModelProto`) for the BERT encoder in `dir`.
pub fn build_model(dir: &Path) -> Result<Vec<u8>, KnowledgeError> {
    let config_path = dir.join("config.json");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|e| KnowledgeError::io(&config_path, e))?)
            .map_err(|e| KnowledgeError::Model(format!("{}: {e}", config_path.display())))?;
    let shape = BertShape::from_config(&config)?;
    let weights_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights_path).map_err(|e| KnowledgeError::io(&weights_path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| KnowledgeError::Model(format!("{}: {e}", weights_path.display())))?;
    let prefix = if st.names().iter().any(|n| n.starts_with("bert.embeddings.")) {
        "bert."
    } else {
        ""
    };
    let graph = build_graph(&Weights { st, prefix }, &shape)?;
    drop(bytes);
    Ok(encode_model(graph, shape.hidden))
}

fn build_graph(w: &Weights, s: &BertShape) -> Result<Graph, KnowledgeError> {
    let h = s.hidden;
    let head_dim = h / s.heads;
    let mut g = Graph::default();
    // an embedding table's rows come from the weights file (vocabulary, positions, token types)
    let table = |g: &mut Graph, name: &str, ids: &str| -> Result<String, KnowledgeError> {
        let full = format!("{}{name}", w.prefix);
        let rows = w.st.tensor(&full).map_err(merr)?.shape().first().copied().unwrap_or(0);
        let t = g.f32s(name, &[rows, h], &w.get(name, &[rows, h])?);
        Ok(g.node("Gather", &[&t, ids], &[]))
    };
    let we = table(&mut g, "embeddings.word_embeddings.weight", INPUT_IDS)?;
    let pe = table(&mut g, "embeddings.position_embeddings.weight", POSITION_IDS)?;
    let te = table(&mut g, "embeddings.token_type_embeddings.weight", TOKEN_TYPE_IDS)?;
    let sum = g.node("Add", &[&we, &pe], &[]);
    let sum = g.node("Add", &[&sum, &te], &[]);
    let mut x = layer_norm(&mut g, w, "embeddings.LayerNorm", &sum, s)?;

    let split_heads = g.i64s("shape_heads", &[0, 0, s.heads as i64, head_dim as i64]);
    let merge_heads = g.i64s("shape_hidden", &[0, 0, h as i64]);
    let scale = g.scalar("attention_scale", 1.0 / (head_dim as f32).sqrt());
    let sqrt2 = g.scalar("sqrt2", std::f32::consts::SQRT_2);
    let one = g.scalar("one", 1.0);
    let half = g.scalar("half", 0.5);
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}");
        let q = linear(&mut g, w, &format!("{p}.attention.self.query"), &x, h, h)?;
        let k = linear(&mut g, w, &format!("{p}.attention.self.key"), &x, h, h)?;
        let v = linear(&mut g, w, &format!("{p}.attention.self.value"), &x, h, h)?;
        let heads = |g: &mut Graph, t: &str, perm: [i64; 4]| {
            let r = g.node("Reshape", &[t, &split_heads], &[]);
            g.node("Transpose", &[&r], &[Attr::Ints("perm", perm.to_vec())])
        };
        let q = heads(&mut g, &q, [0, 2, 1, 3]);
        let k = heads(&mut g, &k, [0, 2, 3, 1]);
        let v = heads(&mut g, &v, [0, 2, 1, 3]);
        let scores = g.node("MatMul", &[&q, &k], &[]);
        let scores = g.node("Mul", &[&scores, &scale], &[]);
        let scores = g.node("Add", &[&scores, ATTENTION_BIAS], &[]);
        let probs = g.node("Softmax", &[&scores], &[Attr::Int("axis", -1)]);
        let ctx = g.node("MatMul", &[&probs, &v], &[]);
        let ctx = g.node("Transpose", &[&ctx], &[Attr::Ints("perm", vec![0, 2, 1, 3])]);
        let ctx = g.node("Reshape", &[&ctx, &merge_heads], &[]);
        let attn = linear(&mut g, w, &format!("{p}.attention.output.dense"), &ctx, h, h)?;
        let res = g.node("Add", &[&attn, &x], &[]);
        let x1 = layer_norm(&mut g, w, &format!("{p}.attention.output.LayerNorm"), &res, s)?;
        let inter = linear(&mut g, w, &format!("{p}.intermediate.dense"), &x1, h, s.intermediate)?;
        // GELU, exact: 0.5 · x · (1 + erf(x / √2))
        let d = g.node("Div", &[&inter, &sqrt2], &[]);
        let e = g.node("Erf", &[&d], &[]);
        let e = g.node("Add", &[&e, &one], &[]);
        let m = g.node("Mul", &[&inter, &e], &[]);
        let act = g.node("Mul", &[&m, &half], &[]);
        let out = linear(&mut g, w, &format!("{p}.output.dense"), &act, s.intermediate, h)?;
        let res = g.node("Add", &[&out, &x1], &[]);
        x = layer_norm(&mut g, w, &format!("{p}.output.LayerNorm"), &res, s)?;
    }
    g.node_to("Identity", &[&x], &[], OUTPUT);
    Ok(g)
}

/// `ModelProto` bytes: opset 17, the graph's nodes, initializers, inputs and output.
fn encode_model(g: Graph, hidden: usize) -> Vec<u8> {
    let mut io = Pb::default();
    io.str(2, "bert_encoder");
    for (name, elem, dims) in [
        (INPUT_IDS, INT64, &["batch", "sequence"][..]),
        (TOKEN_TYPE_IDS, INT64, &["batch", "sequence"][..]),
        (POSITION_IDS, INT64, &["batch", "sequence"][..]),
        (ATTENTION_BIAS, FLOAT, &["batch", "1", "1", "sequence"][..]),
    ] {
        io.msg(11, &value_info(name, elem, dims));
    }
    let hidden = hidden.to_string();
    io.msg(12, &value_info(OUTPUT, FLOAT, &["batch", "sequence", &hidden]));
    let mut opset = Pb::default();
    opset.str(1, "").int(2, 17);
    let mut model = Pb::default();
    model
        .int(1, 8)
        .str(2, "medgrain")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(8, &opset);
    let graph_len = g.nodes.0.len() + g.initializers.0.len() + io.0.len();
    model.key(7, 2);
    model.varint(graph_len as u64);
    model.0.reserve_exact(graph_len);
    model.0.extend_from_slice(&g.nodes.0);
    drop(g.nodes);
    model.0.extend_from_slice(&g.initializers.0);
    drop(g.initializers);
    model.0.extend_from_slice(&io.0);
    model.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_protobuf_varints() {
        // protobuf's encoding guide: 1 → 01, 150 → 96 01, 300 → ac 02; negative int64 → ten bytes
        let mut p = Pb::default();
        p.varint(1);
        p.varint(150);
        p.varint(300);
        assert_eq!(p.0, [0x01, 0x96, 0x01, 0xac, 0x02]);
        let mut n = Pb::default();
        n.int(1, -1);
        assert_eq!(n.0, [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn config_errors_are_named() {
        let ok = serde_json::json!({"hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6,
            "intermediate_size": 1536, "layer_norm_eps": 1e-12, "hidden_act": "gelu"});
        assert_eq!(BertShape::from_config(&ok).unwrap().heads, 12);
        let mut bad = ok.clone();
        bad["num_attention_heads"] = 7.into();
        assert!(BertShape::from_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("multiple"));
        let mut bad = ok.clone();
        bad["hidden_act"] = "relu".into();
        assert!(BertShape::from_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("hidden_act"));
        let mut bad = ok;
        bad.as_object_mut().unwrap().remove("num_hidden_layers");
        assert!(BertShape::from_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("num_hidden_layers"));
    }
}
