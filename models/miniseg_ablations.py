"""The MiniSeg ablations: the authors' 26 files of the release's `full_code/models/MiniSeg_Ablation/` (the
paper's Tables 2 and 3, the journal version's Tables III and V, and K = 2 / 8 branches), each registered as
`MiniSeg` with the builder options that rebuild it; `ABLATIONS` maps each registered variant to its file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ._registry import register_model
from .miniseg import AUX_WEIGHTS, BLOCKS, REFERENCE, MiniSeg

ABLATION_DIR = "full_code/models/MiniSeg_Ablation"


@dataclass(frozen=True)
class Ablation:
    """A MiniSeg ablation: the release file it rebuilds, the table row it stands for, and its `MiniSeg` options.

    `table_row` is the row text of benchmark/paper/ablations_authors_builds.csv; `paper_row` is
    (table, variant) in benchmark/paper/table2_3_ablations_P1110.csv, None for the journal's tables.
    """

    authors_file: str
    table_row: str
    paper_row: tuple[int, str] | None
    options: dict[str, Any]
    description: str

    @property
    def aux_weights(self) -> tuple[float, ...]:
        """Deep supervision as released unless the variant builds no auxiliary heads."""
        return AUX_WEIGHTS if self.options.get("aux", True) else (1.0,)

    @property
    def notes(self) -> str:
        """The registry's notes: the CSV's table row, the release file, then what differs from MiniSeg."""
        return f"{self.table_row}. Authors' file {ABLATION_DIR}/{self.authors_file}.py: {self.description}"


def _after_first(counts: Sequence[int]) -> tuple[int, ...]:
    """The journal's N_k / M_k count a stage's stride-2 block too; `MiniSeg` takes the blocks after it."""
    return tuple(n - 1 for n in counts)


RELEASED_LONG_BLOCKS = _after_first((2, 2, 5, 4))
_SINGLE_PATH = {"two_path": False, "channel_split": False, "residual": False}


def _blocks_row(n: tuple[int, int, int, int], file: str, table_row: str) -> Ablation:
    """Journal Table V, N1~N4: blocks per stage (released {3,4,9,7}); the long path kept as released."""
    return Ablation(
        file,
        table_row,
        None,
        {"blocks": _after_first(n), "long_blocks": RELEASED_LONG_BLOCKS},
        f"short-path blocks per stage N1~N4 = {n}, counting each stage's downsampling block (released "
        f"(3, 4, 9, 7)); the long path keeps the released M1~M4 = (2, 2, 5, 4)",
    )


def _long_row(m: tuple[int, int, int, int], file: str, table_row: str) -> Ablation:
    """Journal Table V, M1~M4: long-path blocks per stage (released {2,2,5,4})."""
    idle = [(s, n, d) for s, (n, d) in enumerate(zip(BLOCKS, _after_first(m)), start=1) if d > n]
    unused = "".join(f" Stage {s} builds {d} long blocks but runs {n} (one per short block), as the file does."
                     for s, n, d in idle)
    return Ablation(
        file,
        table_row,
        None,
        {"long_blocks": _after_first(m)},
        f"long-path blocks per stage M1~M4 = {m}, counting each stage's stride-2 downsampler (released "
        f"(2, 2, 5, 4)); short path as released.{unused}",
    )


def _channels_row(c: tuple[int, int, int, int], file: str, table_row: str) -> Ablation:
    """Journal Table V, C1~C4: channels per stage (released {8,24,32,64}); decoder and heads follow."""
    return Ablation(
        file,
        table_row,
        None,
        {"channels": c},
        f"channels per stage C1~C4 = {c} (released (8, 24, 32, 64)); encoder, decoder and heads follow",
    )


# Registered name -> the release file it rebuilds. `miniseg` itself is MiniSeg_a4 (Table 2's +CS row).
ABLATIONS: dict[str, Ablation] = {
    "miniseg-sb": Ablation(
        "MiniSeg_a0",
        "Table II (readme) = CSV table 2: SB",
        (2, "SB"),
        {"block": "separable", **_SINGLE_PATH},
        "single path (no long path, no channel split), no residual inside a stage; stage 1 keeps its conv "
        "blocks; every stage 2-4 block is 1x1 reduce to out/4 -> depthwise 3x3 (stride) -> grouped 1x1 to out "
        "(2 groups in stage 2 and in stage 3's downsampling block, 4 elsewhere) -> BN -> PReLU; decoder and "
        "deep supervision as released",
    ),
    "miniseg-mb": Ablation(
        "MiniSeg_a1",
        "Table II = CSV table 2: MB",
        (2, "MB"),
        {"block": "pyramid", **_SINGLE_PATH},
        "SB with every stage 2-4 block a multi-branch dilated pyramid (1x1 reduce to out/4 -> depthwise 3x3 "
        "at dilations 1/2/4/8 -> concat -> 4-group 1x1 -> BN -> PReLU): no pooled level, no hierarchy, no "
        "attention; single path, no residual inside a stage",
    ),
    "miniseg-ah": Ablation(
        "MiniSeg_a2",
        "Table II = CSV table 2: +AH(SP)",
        (2, "+AH"),
        {"block": "ahsp", **_SINGLE_PATH},
        "MB plus attentive hierarchical fusion (= AHSP blocks); single path, no residual inside a stage",
    ),
    "miniseg-tp": Ablation(
        "MiniSeg_a3",
        "Table II = CSV table 2: +TP",
        (2, "+TP"),
        {"channel_split": False, "short_act": "relu"},
        "AHSP plus the two-path encoder, no channel split: between stages the long path's downsampler reads "
        "out + long and the short path's downsampling block reads out only; residuals inside stages as "
        "released. The file's encoder short path (stage-1 conv blocks, AHSP blocks) uses ReLU; the "
        "downsamplers and the decoder keep PReLU",
    ),
    "miniseg-relu": Ablation(
        "MiniSeg_a5",
        "Table IV (readme) = CSV table 3: PReLU->ReLU",
        (3, "PReLU->ReLU"),
        {"act": "relu"},
        "every PReLU (encoder and decoder) replaced by ReLU",
    ),
    "miniseg-nodecoder": Ablation(
        "MiniSeg_a6",
        "Table IV = CSV table 3: Remove decoder (no-decoder)",
        (3, "no-decoder"),
        {"decoder": False, "aux": False},
        "no decoder: one 1x1 head (the file's `pred`, here `pred1`) on the last encoder stage (stride 16; "
        "the paper's '1/8' is read as the coarsest encoder output), upsampled bilinearly to the input; "
        "no auxiliary heads",
    ),
    "miniseg-nods": Ablation(
        "MiniSeg_a7",
        "Table IV = CSV table 3: Remove DS (no-deep-supervision)",
        (3, "no-deep-supervision"),
        {"aux": False},
        "only pred1 is built and supervised",
    ),
    "miniseg-stage1ahsp": Ablation(
        "MiniSeg_a8",
        "Table IV = CSV table 3: CB->AHSP (stage1-AHSP)",
        (3, "stage1-AHSP"),
        {"stage1_block": "ahsp"},
        "stage 1's conv blocks (down1 and level1) replaced by AHSP blocks",
    ),
    "miniseg-down3x3": Ablation(
        "MiniSeg_a9",
        "Table IV = CSV table 3: 5x5 DB (downsampler-3x3)",
        (3, "downsampler-3x3"),
        {"down_kernel": 3},
        "the downsampler blocks' depthwise kernel 5x5 -> 3x3",
    ),
    "miniseg-ffm": Ablation(
        "MiniSeg_a10",
        "Table IV = CSV table 3: FFM (FFM->AHSP)",
        (3, "FFM->AHSP"),
        {"fusion": "ahsp"},
        "the decoder's feature fusion modules (up{s}_conv{s+1}: 1x1 conv + depthwise 3x3 at dilations 1 and 2 "
        "-> BN) replaced by stride-1 AHSP blocks",
    ),
    "miniseg-singlepath": Ablation(
        "MiniSeg_a11",
        "Table III (readme; not in CSV): Single-path",
        None,
        {"channels": (16, 48, 64, 128), "channel_split": False},
        "despite its name the file keeps both encoder paths: no channel split (between stages the long "
        "downsampler reads out + long, the short downsampling block reads out only, as +TP) and the width "
        "doubled, C1~C4 = (16, 48, 64, 128); PReLU throughout",
    ),
    "miniseg-n4-5-10-8": _blocks_row((4, 5, 10, 8), "MiniSeg_p1", "Table V (readme; not in CSV): N1~N4 {4,5,10,8}"),
    "miniseg-n5-6-11-9": _blocks_row((5, 6, 11, 9), "MiniSeg_p2", "Table V: N1~N4 {5,6,11,9}"),
    "miniseg-n2-3-8-6": _blocks_row((2, 3, 8, 6), "MiniSeg_p3", "Table V: N1~N4 {2,3,8,6}"),
    "miniseg-n2-2-7-5": _blocks_row((2, 2, 7, 5), "MiniSeg_p4", "Table V: N1~N4 {2,2,7,5}"),
    "miniseg-m3-3-6-5": _long_row((3, 3, 6, 5), "MiniSeg_p5", "Table V: M1~M4 {3,3,6,5}"),
    "miniseg-m4-4-7-6": _long_row((4, 4, 7, 6), "MiniSeg_p6", "Table V: M1~M4 {4,4,7,6}"),
    "miniseg-m2-2-4-3": _long_row((2, 2, 4, 3), "MiniSeg_p7", "Table V: M1~M4 {2,2,4,3}"),
    "miniseg-m2-2-3-2": _long_row((2, 2, 3, 2), "MiniSeg_p8", "Table V: M1~M4 {2,2,3,2}"),
    "miniseg-c16-32-64-128": _channels_row((16, 32, 64, 128), "MiniSeg_p9", "Table V: C1~C4 {16,32,64,128}"),
    "miniseg-c16-48-64-192": _channels_row((16, 48, 64, 192), "MiniSeg_p10", "Table V: C1~C4 {16,48,64,192}"),
    "miniseg-c8-16-32-64": _channels_row((8, 16, 32, 64), "MiniSeg_p11", "Table V: C1~C4 {8,16,32,64}"),
    "miniseg-c8-12-24-48": _channels_row((8, 12, 24, 48), "MiniSeg_p12", "Table V: C1~C4 {8,12,24,48}"),
    "miniseg-k2": Ablation(
        "MiniSeg_K2",
        "not in readme/CSV: AHSP with K=2 branches (dilations 1,2)",
        None,
        {"dilations": (1, 2)},
        "every AHSP block with K = 2 branches at dilations 1, 2: 1x1 reduce to out/2, 2-group attention and "
        "fuse, the pooled level kept",
    ),
    "miniseg-k8": Ablation(
        "MiniSeg_K8",
        "not in readme/CSV: AHSP with K=8 branches (dilations 1,2,4,8,8,8,8,8)",
        None,
        {"dilations": (1, 2, 4, 8, 8, 8, 8, 8)},
        "every AHSP block with K = 8 branches at dilations 1, 2, 4, 8, 8, 8, 8, 8: 1x1 reduce to out/8, "
        "8-group attention and fuse. As in the file, branches 5-8 are weighted by attention map 4 (maps "
        "5-8 are computed but unused)",
    ),
}

RELEASED_FILE = "MiniSeg_a4"  # Table 2's +CS row; the file is identical to the release's models/MiniSeg.py


def authors_file_models() -> dict[str, str]:
    """Release path of every ablation file -> the registered model that rebuilds it (MiniSeg_a4 -> miniseg)."""
    files = {f"{ABLATION_DIR}/{a.authors_file}.py": name for name, a in ABLATIONS.items()}
    return {f"{ABLATION_DIR}/{RELEASED_FILE}.py": "miniseg", **files}


def paper_row_models() -> dict[tuple[int, str], str]:
    """(table, variant) of benchmark/paper/table2_3_ablations_P1110.csv -> the registered model of that row."""
    rows = {a.paper_row: name for name, a in ABLATIONS.items() if a.paper_row is not None}
    return {(2, "+CS"): "miniseg", (3, "default"): "miniseg", **rows}


def _register_ablation(name: str, ablation: Ablation) -> None:
    """Register one ablation: `MiniSeg` with the file's options, nothing else changed."""

    def builder(num_classes: int = 2, in_channels: int = 3) -> MiniSeg:
        return MiniSeg(num_classes=num_classes, in_channels=in_channels, **ablation.options)

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = f"MiniSeg ablation: the authors' {ablation.authors_file}.py ({ablation.table_row})."
    register_model(
        name,
        family="miniseg-ablation",
        paper_name=None,
        aux_weights=ablation.aux_weights,
        reference=REFERENCE,
        notes=ablation.notes,
        input_multiple=16,
    )(builder)


for _name, _ablation in ABLATIONS.items():
    _register_ablation(_name, _ablation)
