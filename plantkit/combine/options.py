"""What one `plantkit combine` call asks for, checked before any store is opened."""

from __future__ import annotations

from dataclasses import dataclass, field

from plantkit import metrics
from plantkit.artifacts import check_name
from plantkit.choices import ROUTER_INPUTS, SPACES, WEIGHT_RULES
from plantkit.combine.greedy import METRICS as GREEDY_METRICS
from plantkit.combine.logit_adjust import TARGETS, parse_tau
from plantkit.combine.tau_norm import METHOD as TAU_NORM
from plantkit.errors import PlantkitInputError
from plantkit.store import LOGITS_DTYPES

# In the order results are listed; logit adjustment comes after its base.
METHODS = ("average", "weighted", "greedy", "temperature", "cascade", "router", TAU_NORM,
           "logit-adjust")
DEFAULT_WITHIN = 0.005  # cascade: half a point of val top-1 below the full average


@dataclass
class CombineOptions:
    """Methods and their settings (the command's flags); see `plantkit combine --help`."""

    experts: list[str] | None = None  # None: every expert under ARTIFACTS/experts
    average: bool = False
    weighted: bool = False
    greedy: bool = False
    temperature: bool = False
    logit_adjust: str | None = None  # a tau >= 0, or "auto"
    target: str = "top1"  # what a tau picked on val maximises: top1 or macro
    tau_norm: list[str] = field(default_factory=list)  # experts to tau-normalise
    adjust_on: str = "average"  # an expert name or a method of this call
    cascade: bool = False
    within: float | None = None  # cascade: top-1 margin below the full average (default 0.005)
    budget: float | None = None  # cascade: GFLOPs per image instead of --within
    router: bool = False
    router_input: str | None = None  # features | confidences; None: features when available
    top_k: int | None = None
    balance: float = 0.01
    seed: int = 0
    router_settings: dict = field(default_factory=dict)  # more fit_router keywords (folds ...)
    space: str = "probs"  # average of probabilities or of logits
    weight_by: str = "fit"  # --weighted's rule: fit (val NLL after temperature scaling) or accuracy
    greedy_metric: str = "nll"
    costs: dict[str, float] = field(default_factory=dict)  # --cost name=gflops
    prefix: str | None = None  # of the combination names: PREFIX-average ...
    dtype: str = "float32"  # of the stored log-probabilities
    fit_rows: int = 2048  # val rows a temperature is fitted on (evenly spread)
    chunk_rows: int | None = None  # rows per read; None: aligned to the stores' chunks
    greedy_candidates: int = 10  # classes per row for top-1 greedy
    ks: tuple[int, ...] = metrics.DEFAULT_KS  # --k: top-k and average-k of every result

    def methods(self) -> list[str]:
        chosen = {"average": self.average, "weighted": self.weighted, "greedy": self.greedy,
                  "temperature": self.temperature, "cascade": self.cascade,
                  "router": self.router, TAU_NORM: bool(self.tau_norm),
                  "logit-adjust": self.logit_adjust is not None}
        return [m for m in METHODS if chosen[m]]

    def combination_name(self, method: str) -> str:
        return f"{self.prefix}-{method}" if self.prefix else method

    def tau_norm_name(self, expert: str) -> str:
        """The combination `--tau-norm EXPERT` saves: [PREFIX-]tau-norm-EXPERT."""
        return self.combination_name(f"{TAU_NORM}-{expert}")

    def output_names(self) -> list[str]:
        """The names of the combinations this call saves."""
        names: list[str] = []
        for method in self.methods():
            if method == TAU_NORM:
                names.extend(self.tau_norm_name(e) for e in self.tau_norm)
            else:
                names.append(self.combination_name(method))
        return names

    @property
    def min_experts(self) -> int:
        """Stores the call needs: one for tau-normalisation alone, else two."""
        return 1 if self.methods() == [TAU_NORM] else 2

    @property
    def tau(self) -> float | None:
        return None if self.logit_adjust is None else parse_tau(self.logit_adjust)

    def validate(self) -> CombineOptions:
        """PlantkitInputError naming the first bad option; fills the cascade's default margin."""
        if not self.methods():
            raise PlantkitInputError(
                "choose at least one method: --average, --weighted, --greedy, --temperature, "
                "--logit-adjust TAU|auto, --tau-norm EXPERT, --cascade or --router"
            )
        _one_of("--space", self.space, SPACES)
        _one_of("--weight-by", self.weight_by, WEIGHT_RULES)
        _one_of("--greedy-metric", self.greedy_metric, GREEDY_METRICS)
        _one_of("--target", self.target, TARGETS)
        _one_of("--dtype", self.dtype, LOGITS_DTYPES)
        if self.router_input is not None:
            _one_of("--router-input", self.router_input, ROUTER_INPUTS)
        self.tau  # noqa: B018 - parses --logit-adjust
        self.ks = metrics.parse_ks(self.ks)
        if self.within is not None and self.budget is not None:
            raise PlantkitInputError("--within and --budget both set: the cascade takes one")
        if self.cascade and self.within is None and self.budget is None:
            self.within = DEFAULT_WITHIN
        if self.within is not None and not self.within >= 0:
            raise PlantkitInputError(f"--within {self.within}: give a top-1 margin >= 0")
        if self.budget is not None and not self.budget > 0:
            raise PlantkitInputError(f"--budget {self.budget}: give GFLOPs per image > 0")
        if self.top_k is not None and self.top_k < 1:
            raise PlantkitInputError(f"--top-k {self.top_k}: give at least 1")
        if not self.balance >= 0:
            raise PlantkitInputError(f"--balance {self.balance}: give a weight >= 0")
        for what, value in (("fit_rows", self.fit_rows), ("chunk_rows", self.chunk_rows or 1),
                            ("greedy_candidates", self.greedy_candidates)):
            if value < 1:
                raise PlantkitInputError(f"{what} must be >= 1, got {value}")
        self._check_tau_norm()
        for name in self.output_names():
            check_name(name, "--prefix")
        return self

    def _check_tau_norm(self) -> None:
        self.tau_norm = [e.strip() for e in self.tau_norm]
        for expert in self.tau_norm:
            if self.tau_norm.count(expert) > 1:
                raise PlantkitInputError(f"--tau-norm names {expert} twice: give each once")
            check_name(expert, "--tau-norm")


def _one_of(option: str, value: str, allowed) -> None:
    if value not in allowed:
        raise PlantkitInputError(f"{option} {value!r}: use one of {', '.join(allowed)}")
