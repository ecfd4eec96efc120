//! `medgrain eval vqa|grounding|report`: scores by published protocols (all work in `medgrain-eval`).

use crate::cli::{EvalAction, UncertainArg, VqaProtocolArg};
use crate::error::CliError;
use medgrain_eval::{grounding, report, vqa};
use serde::Serialize;
use std::process::ExitCode;

fn print_json(v: &impl Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Internal(e.to_string()))?;
    outln!("{s}");
    Ok(())
}

fn fmt(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() => format!("{x:.4}"),
        _ => v.to_string(),
    }
}

fn print_list(name: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    outln!("  {name} ({}):", items.len());
    for i in items.iter().take(20) {
        outln!("    {i}");
    }
    if items.len() > 20 {
        outln!("    … {} more (--json lists all)", items.len() - 20);
    }
}

fn scores_line(label: &str, m: &serde_json::Value) {
    let parts: Vec<String> = m
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("{k} {}", fmt(v))).collect())
        .unwrap_or_default();
    outln!("  {label}: {}", parts.join(", "));
}

fn code(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(crate) fn run(action: EvalAction) -> Result<ExitCode, CliError> {
    match action {
        EvalAction::Vqa {
            pred,
            gold,
            protocol,
            json,
        } => {
            let protocol = match protocol {
                VqaProtocolArg::LlavaMed => vqa::Protocol::LlavaMed,
                VqaProtocolArg::Medtrinity => vqa::Protocol::MedTrinity,
            };
            let g = vqa::read_gold(&gold)?;
            let p = vqa::read_predictions(&pred)?;
            let r = vqa::evaluate(&g, &p, protocol);
            if json {
                print_json(&r)?;
            } else {
                outln!(
                    "medgrain eval vqa ({} protocol): {} gold questions",
                    r.protocol,
                    g.len()
                );
                scores_line("overall", &r.overall);
                for (k, m) in &r.by_question_type {
                    scores_line(&format!("question type {k}"), m);
                }
                for (k, m) in &r.by_modality {
                    scores_line(&format!("modality {k}"), m);
                }
                print_list("gold ids without a prediction (scored wrong)", &r.missing);
                print_list("predictions not in the gold file (not scored)", &r.unmatched);
                print_list("duplicated prediction ids (first scored)", &r.duplicates);
                print_list("duplicated gold ids (first scored)", &r.duplicate_gold);
                print_list("empty answers", &r.empty_answers);
                print_list("unusable prediction lines", &r.bad_lines);
            }
            Ok(code(r.clean()))
        }
        EvalAction::Grounding { pred, gold, json } => {
            let r = grounding::evaluate(&pred, &gold)?;
            if json {
                print_json(&r)?;
            } else {
                let o = &r.overall;
                outln!(
                    "medgrain eval grounding: {} findings: Dice {:.4}, hit rate {:.4}, instance precision {:.4}, recall {:.4}, F1 {:.4} (TP {}, FP {}, FN {})",
                    o.findings, o.dice, o.hit_rate, o.instance_precision, o.instance_recall, o.instance_f1, o.tp, o.fp, o.fn_
                );
                print_list("gold findings without a prediction (scored 0)", &r.missing);
                print_list("predictions without a gold finding (not scored)", &r.unmatched);
                print_list("predictions on another grid (scored 0)", &r.wrong_grid);
                print_list("unreadable files", &r.unreadable);
            }
            Ok(code(r.clean()))
        }
        EvalAction::Report {
            pred,
            gold,
            uncertain,
            json,
        } => {
            let u = match uncertain {
                UncertainArg::Present => report::Uncertain::Present,
                UncertainArg::Absent => report::Uncertain::Absent,
            };
            let r = report::evaluate(&pred, &gold, u)?;
            if json {
                print_json(&r)?;
            } else {
                outln!(
                    "medgrain eval report: {} reports: findings precision {:.4}, recall {:.4}, F1 {:.4} (micro; macro F1 {:.4}); with anatomy F1 {:.4}; BLEU-4 {:.4}, ROUGE-L {:.4}",
                    r.reports, r.precision, r.recall, r.f1, r.macro_f1, r.with_anatomy.f1, r.bleu4, r.rouge_l
                );
                for (k, p) in &r.by_finding {
                    outln!(
                        "  {k}: precision {:.4}, recall {:.4}, F1 {:.4} (TP {}, FP {}, FN {})",
                        p.precision,
                        p.recall,
                        p.f1,
                        p.tp,
                        p.fp,
                        p.fn_
                    );
                }
                print_list("references without a generated report (scored empty)", &r.missing);
                print_list("generated reports not among the references (not scored)", &r.unmatched);
                print_list("duplicated ids (first scored)", &r.duplicates);
                print_list("empty generated reports", &r.empty_predictions);
            }
            Ok(code(r.clean()))
        }
    }
}
