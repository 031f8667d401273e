"""The recipe: one YAML file from a model to gated, reported pruned builds; a frozen, validated schema.

    name: quickstart                       # names the run folder and the builds
    model: builtin:emo-small               # a folder, builtin:NAME or a Hub id (org/name)
    calibration: {sources: [builtin:code:calib], domains: [code], max_tokens: 20000, seq_len: 256}
    selection: {method: mass, budget: uniform, combine: union}
    budgets: [0.25, 0.125]                 # fractions of each layer's experts, or counts (32)
    output: {pattern: "{name}-{budget}"}   # builds/<pattern>/
    verify: {enabled: true, prompts: 4}
    eval: {tasks: [emo_ppl_code], limit: 20}
    gates:                                 # versus the unpruned model, evaluated with the same settings
      - {task: emo_ppl_code, max_drop: 0.5}          # absolute, in the metric's units
      - {task: emo_math_mc, min_retained: 0.9, budgets: [0.25]}
      - {task: emo_ppl_code, max_drop: 0.6, edge: q4_k_m}   # the GGUF file, scored in llama.cpp
    edge: {formats: [gguf], dtypes: [q8_0, q4_k_m]}     # builds/<build>-<dtype>.gguf, scored in llama.cpp
    finetune: {sources: [builtin:code:train], max_tokens: 100000}  # builds/<build>-ft/, after verify, before eval
    plans: {formats: [vllm, vllm-ascend]}  # builds/<build>.<format>.json(l), other tools' plan files

Unknown fields are errors (a typo must not be silently ignored). Relative paths (model, calibration
files, include paths) are relative to the working directory, as on the command line. `--set a.b=v`
overrides a field before validation; v is parsed as YAML (`--set budgets=[0.5]`).
A recipe is untrusted data: every build folder it names must be one plain folder name (it stays in
OUT/builds/), and YAML whose aliases expand past MAX_NODES values (an "alias bomb") is refused as
parsed, before `--set` or validation walk it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator, model_validator

from emo_prune.common.constants import DEFAULT_MAX_TOKENS, FINETUNE_BATCH, FINETUNE_LR, FINETUNE_WARMUP
from emo_prune.errors import EmoPruneError, RecipeError
from emo_prune.select.keep import keep_label as budget_label  # a recipe budget's folder-name part

if TYPE_CHECKING:
    from emo_prune.eval import EvalSettings
    from emo_prune.profile.runner import ProfileSettings
    from emo_prune.select import GreedySettings, SelectOptions
    from emo_prune.train.finetune import FinetuneSettings

# names that become folders, matched WHOLE (fullmatch: `$` would also match before a trailing newline,
# and "mini\n" would make a folder of that name); the first character rules out '.', '..' and '-x'
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # recipe name / output.name: the run folder, build names
_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")  # a build folder: one name; '+' joins domains
_NAME_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit (it names folders)"
PATTERN_FIELDS = ("name", "budget", "method", "domains")
MAX_NODES = 100_000  # values of a recipe with every alias expanded; real recipes hold a few hundred
T = TypeVar("T")


def _folder_name(value: str) -> str:
    """A recipe's `name` / `output.name` as given, or ValueError quoting it (escaped) and the rule."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not a folder name; use {_NAME_RULE}")
    return value


def _check_budget(value: Any) -> float | int:
    from emo_prune.select import Keep

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is neither a fraction (0.25) nor an expert count (32)")
    try:
        Keep.parse(value)
    except EmoPruneError as exc:
        raise ValueError(str(exc).replace("--keep ", "budget ")) from None
    return value


#: a fraction of each layer's experts (0.25) or a count per layer (32); shared experts count
Budget = Annotated[float | int, PlainValidator(_check_budget)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def carried(self, target: type[T], **overrides: Any) -> T:
        """`target` (a settings dataclass of the library) from this section's fields of the same names, then
        `overrides`: a recipe field reaches the library exactly when both sides name it."""
        names = {f.name for f in dataclasses.fields(target)} & set(type(self).model_fields)  # type: ignore[arg-type]
        return target(**{**{name: getattr(self, name) for name in names}, **overrides})


class Calibration(_Section):
    """What `emo-prune profile` reads: sources (files, folders, builtin:code|prose|math[:train], hf:..., task:...).

    The offline tasks (emo_ppl_*) hold the `heldout` split, so no split a profile reads is scored; on the
    bundled models use `builtin:NAME:calib` (they were trained on `train`).
    """

    sources: tuple[str, ...] = Field(min_length=1)
    domains: tuple[str, ...] | None = None  # default: every domain the sources hold
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, gt=0)  # per domain (constants.py); null = every document
    seq_len: int | None = Field(default=None, gt=0)  # null = min(2048, the model's context)
    batch_size: int = Field(default=8, gt=0)
    seed: int = 0
    layerwise: bool | None = None  # null: the path that needs less memory (emo_prune.memory)
    device: str = "auto"
    dtype: str = "auto"

    def profile_settings(self) -> ProfileSettings:
        from emo_prune.profile.runner import ProfileSettings

        return self.carried(ProfileSettings)

    def greedy_settings(self, model_dir: Path) -> GreedySettings:
        """Greedy selection reads the calibration settings, as the profile step does."""
        from emo_prune.io import Checkpoint
        from emo_prune.models.loading import resolve_device, resolve_seq_len
        from emo_prune.select import GreedySettings

        return GreedySettings(
            seq_len=resolve_seq_len(self.seq_len, Checkpoint.open(model_dir).config),
            batch_size=self.batch_size,
            device=resolve_device(self.device),
        )


class Selection(_Section):
    method: str = "mass"  # mass | frequency | reap | greedy | random | easy_ep | coverage
    domains: tuple[str, ...] | None = None  # default: the calibration domains
    budget: str = "uniform"  # uniform | global
    combine: str = "union"  # union | weighted
    seed: int = 0

    @field_validator("method", "budget", "combine")
    @classmethod
    def _known(cls, value: str, info: Any) -> str:
        from emo_prune.select import BUDGETS, COMBINES, METHODS

        known = {"method": METHODS, "budget": BUDGETS, "combine": COMBINES}[info.field_name]
        if value not in known:
            raise ValueError(f"{value!r} is not one of {', '.join(known)}")
        return value


class Output(_Section):
    name: str | None = None  # default: the recipe's name
    pattern: str = "{name}-{budget}"  # build folder name; fields: name, budget, method, domains
    max_shard_size: str = "5GB"
    dtype: str | None = None  # default: as stored

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return value if value is None else _folder_name(value)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        fields = set(re.findall(r"{(\w*)}", value))
        if "budget" not in fields:
            raise ValueError("must contain {budget}, or every budget would write the same folder")
        unknown = fields - set(PATTERN_FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; use {', '.join(PATTERN_FIELDS)}")
        return value

    @field_validator("max_shard_size", "dtype")
    @classmethod
    def _as_extract_reads_it(cls, value: str | None, info: Any) -> str | None:
        from emo_prune.extract import resolve_dtype
        from emo_prune.io.sizes import parse_size

        try:
            parse_size(value) if info.field_name == "max_shard_size" else resolve_dtype(value)
        except EmoPruneError as exc:
            raise ValueError(str(exc)) from None
        return value


class Verify(_Section):
    enabled: bool = True
    prompts: int = Field(default=4, gt=0)


class Eval(_Section):
    tasks: tuple[str, ...] = ()
    num_fewshot: int | None = Field(default=None, ge=0)
    limit: int | float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=8, gt=0)
    max_length: int | None = Field(default=None, gt=0)
    include_paths: tuple[str, ...] = ()
    impl: str = "auto"
    dtype: str = "auto"
    device: str = "cpu"
    bootstrap_iters: int = Field(default=100000, ge=0)
    coverage_warn: float | None = Field(default=None, ge=0)  # builds: warn below this x their calibration coverage (0.85)

    def settings(self) -> EvalSettings:
        from emo_prune.eval import EvalSettings

        return self.carried(EvalSettings)


class Finetune(_Section):
    """Recovery fine-tuning of every build after extract (and verify), before eval: builds/<build>-ft/. The
    fields are `emo-prune finetune`'s (AI2's defaults); the report shows each build before and after."""

    sources: tuple[str, ...] = Field(min_length=1)
    epochs: int = Field(default=1, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)  # a token budget instead of epochs
    lr: float = Field(default=FINETUNE_LR, gt=0)
    batch_size: int = Field(default=FINETUNE_BATCH, gt=0)
    seq_len: int | None = Field(default=None, gt=0)
    warmup: float = Field(default=FINETUNE_WARMUP, ge=0, lt=1)
    seed: int = 0
    train: str = "all"
    lora: int | None = Field(default=None, gt=0)
    dtype: str = "float32"
    device: str = "cpu"
    checkpoint_every: int = Field(default=100, gt=0)

    @model_validator(mode="after")
    def _as_finetune_reads_it(self) -> Finetune:
        try:
            self.settings().check()
        except EmoPruneError as exc:
            raise ValueError(str(exc)) from None
        return self

    def settings(self, max_shard_size: str = "5GB") -> FinetuneSettings:
        from emo_prune.train.finetune import FinetuneSettings

        return self.carried(FinetuneSettings, max_shard_size=max_shard_size)


class Edge(_Section):
    """Files for edge runtimes next to each build (builds/<build>-<dtype>.gguf), each scored IN llama.cpp
    on eval.tasks (llama-cpp-python; the `edge` extra)."""

    formats: tuple[str, ...] = ("gguf",)
    dtypes: tuple[str, ...] = Field(min_length=1)
    eval: bool = True  # score each file in llama.cpp (needs eval.tasks)
    threads: int | None = Field(default=None, gt=0)  # llama.cpp threads (default: all cores)

    @field_validator("formats", "dtypes")
    @classmethod
    def _known(cls, values: tuple[str, ...], info: Any) -> tuple[str, ...]:
        from emo_prune.export.formats import DTYPES, FORMATS

        allowed = FORMATS if info.field_name == "formats" else DTYPES
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{', '.join(bad)} not one of {', '.join(allowed)}")
        return values


class Plans(_Section):
    """Other tools' plan files next to each build (builds/<build>.<format>.json, .jsonl for vllm-ascend),
    written by `emo_prune.export.plans`: vllm and ai2 from the build's plan; vllm-ascend (ranked by
    selection.method, refused where one expert_prune_ratio cannot express the budget) and
    llama-expert-stats from the profile, over the selection's domains."""

    formats: tuple[str, ...] = Field(min_length=1)

    @field_validator("formats")
    @classmethod
    def _known(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        from emo_prune.export.plans.registry import EXPORT_FORMATS

        bad = [v for v in values if v not in EXPORT_FORMATS]
        if bad:
            raise ValueError(f"{', '.join(bad)} not one of {', '.join(EXPORT_FORMATS)}")
        return values


class Gate(_Section):
    """Holds when the build's score on `task` (its primary metric, or `metric`) is close enough to the
    unpruned model's: drop <= max_drop and/or retained >= min_retained (see emo_prune.eval.compare).
    With `edge: DTYPE` the score is the build's GGUF file of that dtype, measured in llama.cpp."""

    task: str
    metric: str | None = None
    max_drop: float | None = None
    min_retained: float | None = Field(default=None, gt=0)
    budgets: tuple[Budget, ...] | None = None  # default: every budget
    edge: str | None = None  # a dtype of the recipe's edge.dtypes
    finetuned: bool = True  # with a finetune section: judge the fine-tuned build (false: the build before it)

    @model_validator(mode="after")
    def _some_bound(self) -> Gate:
        if self.max_drop is None and self.min_retained is None:
            raise ValueError("give max_drop (absolute) or min_retained (fraction), or both")
        return self


class Recipe(_Section):
    name: str
    description: str = ""
    model: str
    calibration: Calibration
    selection: Selection = Selection()
    budgets: tuple[Budget, ...]
    output: Output = Output()
    verify: Verify = Verify()
    eval: Eval = Eval()
    gates: tuple[Gate, ...] = ()
    edge: Edge | None = None
    finetune: Finetune | None = None
    plans: Plans | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _folder_name(value)

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, values: tuple[float | int, ...]) -> tuple[float | int, ...]:
        if not values:
            raise ValueError("list at least one budget, e.g. [0.25, 0.125]")
        if len({budget_label(v) for v in values}) != len(values):
            raise ValueError("a budget is listed twice")
        return values

    # ---- derived --------------------------------------------------------------------------------
    @property
    def build_name(self) -> str:
        return self.output.name or self.name

    @property
    def selection_domains(self) -> tuple[str, ...]:
        return self.selection.domains or self.calibration.domains or ()

    def select_options(self, model_dir: Path, budget: float | int) -> SelectOptions:
        """The selection of one budget: the selection section, its domains, the calibration's sources and
        (for greedy) its seq_len, batch_size and device."""
        from emo_prune.select import SelectOptions

        return self.selection.carried(
            SelectOptions,
            keep=str(budget),
            domains=self.selection_domains,
            calib=self.calibration.sources,
            greedy=self.calibration.greedy_settings(model_dir),
        )

    def build_folder(self, budget: float | int) -> str:
        return self.output.pattern.format(
            name=self.build_name,
            budget=budget_label(budget),
            method=self.selection.method,
            domains="+".join(self.selection_domains) or "all",
        )

    def gates_for(self, budget: float | int) -> list[Gate]:
        label = budget_label(budget)
        return [g for g in self.gates if g.budgets is None or label in {budget_label(b) for b in g.budgets}]

    def section_digest(self, *sections: str) -> str:
        """sha256 of the named sections' resolved values: what a pipeline step's key depends on."""
        data = {s: self.model_dump(mode="json")[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def to_yaml(self, header: str = "") -> str:
        body = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        return "".join(f"# {line}\n" for line in header.splitlines()) + body


# ---- loading ------------------------------------------------------------------------------------
def _cross_checks(recipe: Recipe) -> list[str]:
    problems = []
    tasks = set(recipe.eval.tasks)
    labels = {budget_label(b) for b in recipe.budgets}
    for i, gate in enumerate(recipe.gates):
        if gate.task not in tasks:
            problems.append(f"gates.{i}.task: {gate.task!r} is not in eval.tasks ({', '.join(recipe.eval.tasks) or 'empty'})")
        for b in gate.budgets or ():
            if budget_label(b) not in labels:
                problems.append(f"gates.{i}.budgets: {b} is not in budgets ({', '.join(map(str, recipe.budgets))})")
    if recipe.calibration.domains and recipe.selection.domains:
        missing = set(recipe.selection.domains) - set(recipe.calibration.domains)
        if missing:
            problems.append(
                f"selection.domains: {', '.join(sorted(missing))} not in calibration.domains "
                f"({', '.join(recipe.calibration.domains)})"
            )
    for budget in recipe.budgets:
        try:
            folder = recipe.build_folder(budget)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            problems.append(f"output.pattern: cannot be filled in ({exc})")
            break
        if not _FOLDER.fullmatch(folder):
            problems.append(
                f"output.pattern / output.name: the build folder {folder!r} is not one plain folder name "
                f"(letters, digits, '.', '_', '+', '-'; it is created inside OUT/builds/)"
            )
            break
    edge_dtypes = set(recipe.edge.dtypes) if recipe.edge is not None and recipe.edge.eval else set()
    for i, gate in enumerate(recipe.gates):
        if gate.edge is not None and gate.edge not in edge_dtypes:
            problems.append(
                f"gates.{i}.edge: {gate.edge!r} is not an edge file this recipe scores "
                f"(edge.dtypes: {', '.join(sorted(edge_dtypes)) or 'none'}, edge.eval must be true)"
            )
    if recipe.plans is not None and "vllm-ascend" in recipe.plans.formats:
        from emo_prune.common.constants import PROFILE_METHODS

        if recipe.selection.method not in PROFILE_METHODS:
            problems.append(
                f"plans.formats: vllm-ascend ranks experts from the profile, which selection.method "
                f"{recipe.selection.method} does not (profile methods: {', '.join(PROFILE_METHODS)})"
            )
    if recipe.edge is not None and recipe.selection.budget != "uniform":
        problems.append("edge: a GGUF file needs one expert count per layer; set selection.budget: uniform")
    if recipe.selection.budget == "global" and recipe.selection.method == "greedy":
        problems.append("selection.budget: global cannot be used with method greedy (it picks layer by layer)")
    return problems


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


# what a field holding a list or a mapping looks like, for pydantic's "Input should be a valid tuple /
# dictionary", which says what is wrong but not what to write
_SHAPES = {
    "gates": "a list of gates, each a mapping like {task: emo_ppl_code, max_drop: 0.5} or {task: emo_math_mc, "
    "min_retained: 0.9} (optional: metric, budgets, edge)",
    "budgets": "a list of budgets: fractions of each layer's experts [0.25, 0.125] or expert counts [32]",
    "calibration": "a mapping like {sources: [builtin:code:calib], max_tokens: 20000}",
}
_SHAPE_ERRORS = ("tuple_type", "list_type", "dict_type", "model_type", "model_attributes_type")


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see emo_prune/pipeline/recipe.py for the schema)"
    if error["type"] == "missing":
        return "required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in _SHAPE_ERRORS:
        top = str(error["loc"][0]) if error["loc"] else ""
        shape = _SHAPES.get(top, "a list, e.g. [a, b]" if error["type"] in ("tuple_type", "list_type") else "a mapping of fields")
        return f"{message}; write {shape}"
    return message


def validate_recipe(data: Any, where: str = "recipe") -> Recipe:
    """A Recipe from parsed YAML, or RecipeError naming every bad field."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: must be a mapping of fields (name, model, calibration, budgets, ...)")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_field(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise RecipeError(f"{where}: " + "; ".join(problems)) from None
    problems = _cross_checks(recipe)
    if problems:
        raise RecipeError(f"{where}: " + "; ".join(problems))
    return recipe


def check_size(data: Any, where: str) -> None:
    """RecipeError when `data` (parsed YAML) has a cycle or more than MAX_NODES values with aliases expanded.

    PyYAML shares one object per anchor, so a bomb is small in memory but exponential to walk; sizes are
    counted once per shared object (memoized by id), so this check costs the parsed size, not the expanded one.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise RecipeError(f"{where}: a YAML alias refers to itself (a recursive recipe)")
        active.add(id(node))
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise RecipeError(f"{where}: expands to more than {MAX_NODES} values (YAML aliases?); refusing to read it")
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise RecipeError(f"{where}: nests too deeply to be a recipe") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b=value` (value parsed as YAML; list items by index: gates.0.max_drop=0.1) on a copy of `data`."""
    data = json.loads(json.dumps(data, default=str))  # a YAML date is a str here, as pydantic would say
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {item!r}: write key=value, e.g. --set eval.limit=10")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise RecipeError(f"--set {item!r}: the value is not valid YAML ({exc})".replace("\n", " ")) from None
        check_size(value, f"--set {key}")
        parts = key.strip().split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(f"--set {key}: {'.'.join(parts[:depth]) or 'it'} has no item {part}")
                part = int(part)  # type: ignore[assignment]
            elif not isinstance(node, dict):
                raise RecipeError(f"--set {key}: {'.'.join(parts[:depth])} is not a mapping")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
    return data


def read_recipe_yaml(path: Path) -> dict[str, Any]:
    from emo_prune.io.text import read_text

    text = read_text(path, RecipeError, "recipe")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    except RecursionError:
        raise RecipeError(f"{path} nests too deeply to be a recipe") from None
    check_size(data, str(path))
    return data


def find_recipe(spec: str | Path | None) -> Path:
    """A recipe file, or the name of a shipped one (`quickstart` = recipes/quickstart.yaml; the default)."""
    from emo_prune.eval.tasks import recipes_dir

    spec = str(spec or "quickstart")
    path = Path(spec)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in spec:
        return path
    shipped = recipes_dir() / f"{spec}.yaml"
    if not shipped.exists():
        names = sorted(p.stem for p in recipes_dir().glob("*.yaml"))
        raise RecipeError(f"no recipe file {spec!r} and no shipped recipe of that name (shipped: {', '.join(names)})")
    return shipped


def load_recipe(spec: str | Path | None, overrides: list[str] = ()) -> tuple[Recipe, Path]:
    """(validated recipe, its file) from a path or a shipped recipe's name, with `--set` overrides applied."""
    path = find_recipe(spec)
    data = read_recipe_yaml(path)
    if overrides and isinstance(data, dict):
        data = apply_overrides(data, list(overrides))
    return validate_recipe(data, where=str(path)), path
