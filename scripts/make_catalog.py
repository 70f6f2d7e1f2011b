"""One-off generator: rules/catalog.yaml variants from a benchmark CSV (one row per library model: params, GMACs, top-1, CPU latency).

Kept for provenance; the YAML is the source of truth afterwards (hand-edited fields: kind, depth).
"""

import csv
import sys

PICK = {
    # family, catalog name, reference library, reference name (the CSV row to copy facts from)
    "ResNet": [
        ("resnet18", "torchvision", "resnet18"),
        ("resnet34", "torchvision", "resnet34"),
        ("resnet50", "torchvision", "resnet50"),
        ("resnet101", "torchvision", "resnet101"),
        ("resnet152", "torchvision", "resnet152"),
    ],
    "ConvNeXt": [
        (n, "timm", n)
        for n in [
            "convnext_atto",
            "convnext_femto",
            "convnext_pico",
            "convnext_nano",
            "convnext_tiny",
            "convnext_small",
            "convnext_base",
            "convnext_large",
        ]
    ],
    "EfficientNetV2": [(n, "torchvision", n) for n in ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"]],
    "RegNetY": [
        (n, "timm", n)
        for n in [
            "regnety_002",
            "regnety_004",
            "regnety_008",
            "regnety_016",
            "regnety_032",
            "regnety_080",
            "regnety_160",
            "regnety_320",
        ]
    ],
    "MobileViT": [(n, "timm", n) for n in ["mobilevit_xxs", "mobilevit_xs", "mobilevit_s"]],
    "ViT": [
        (n, "timm", n)
        for n in ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224"]
    ],
    "MobileNetV3": [(n, "torchvision", n) for n in ["mobilenet_v3_small", "mobilenet_v3_large"]],
    "EfficientNet-Lite": [("efficientnet_lite0", "timm", "efficientnet_lite0")]
    + [(f"efficientnet_lite{i}", "timm", f"tf_efficientnet_lite{i}") for i in range(1, 5)],
}
rows = {}
for r in csv.DictReader(open(sys.argv[1])):
    rows[(r["library"], r["name"])] = r
for fam, items in PICK.items():
    print(f"  # --- {fam}")
    for name, lib, ref in items:
        r = rows[(lib, ref)]
        csv_fam = "RegNet" if fam == "RegNetY" else fam
        assert r["family"] == csv_fam, (r["family"], fam)
        refname = ref if not ref.startswith("tf_efficientnet_lite") else name
        print(f"  - name: {name}")
        print(f"    family: {fam}")
        print(f"    reference: {{library: {lib}, name: {refname}}}")
        print(f"    params: {int(r['params'])}")
        print(f"    gmacs: {float(r['gmacs'])}")
        print(f"    input_size: {int(r['input_size'])}")
        print(f"    imagenet_top1: {float(r['top1'])}")
        src = r["top1_source"].replace('"', "'")
        print(f'    top1_source: "{src}"')
        print(f"    cpu_latency_ms: {float(r['cpu_latency_ms_b1'])}")
