"""One test's result as Contract 3 writes it, and APA-style strings (APA 7: no leading zero for p and for
effect sizes bounded by 1, two decimals, p < .001)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def fmt_p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "p = n/a"
    return "p < .001" if p < 0.001 else f"p = {p:.3f}".replace("0.", ".", 1)


def fmt_bounded(x: float) -> str:
    """A number in [-1, 1] without the leading zero (APA), e.g. .05, -.32."""
    s = f"{x:.2f}"
    return s.replace("0.", ".", 1) if abs(x) < 1 else s


def fmt_df(df: float) -> str:
    return f"{df:.0f}" if abs(df - round(df)) < 1e-9 else f"{df:.1f}"


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


@dataclass
class TestResult:
    __test__ = False  # a statistics result, not a pytest test class
    name: str
    method: str
    estimate: float | None = None
    ci95: tuple[float, float] | None = None
    statistic: float | None = None
    df: float | None = None  # t and F: denominator df; H and chi²: df
    p: float | None = None
    effect_size: dict = field(default_factory=dict)  # {"name", "value", "ci95"?}
    apa: str = ""
    df_num: float | None = None  # F tests: numerator df
    p_adjusted: float | None = None
    skipped: str | None = None  # why the test could not run (e.g. a single culture group)
    extra: dict = field(default_factory=dict)

    @classmethod
    def skip(cls, name: str, method: str, reason: str) -> TestResult:
        return cls(name=name, method=method, skipped=reason, apa=f"not run: {reason}")

    def to_dict(self) -> dict:
        out = {
            "name": self.name, "method": self.method, "estimate": _finite(self.estimate),
            "ci95": [_finite(c) for c in self.ci95] if self.ci95 else None,
            "statistic": _finite(self.statistic), "df": _finite(self.df), "p": _finite(self.p),
            "p_adjusted": _finite(self.p_adjusted),
            "effect_size": {k: ([_finite(c) for c in v] if k == "ci95" and v else
                                _finite(v) if isinstance(v, (int, float)) else v)
                            for k, v in self.effect_size.items()},
            "apa": self.apa,
        }
        if self.df_num is not None:
            out["df_num"] = _finite(self.df_num)
        if self.skipped:
            out["skipped"] = self.skipped
        out.update(self.extra)
        return out


def apa_t(t: float, df: float, p: float, b: float, ci: tuple[float, float], es_name: str, es: float) -> str:
    return (f"b = {b:.2f}, 95% CI [{ci[0]:.2f}, {ci[1]:.2f}], t({fmt_df(df)}) = {t:.2f}, {fmt_p(p)}, "
            f"{es_name} = {es:.2f}")


def apa_f(f: float, df1: float, df2: float, p: float, es: float) -> str:
    return f"F({fmt_df(df1)}, {fmt_df(df2)}) = {f:.2f}, {fmt_p(p)}, ηp² = {fmt_bounded(es)}"


def apa_z(z: float, p: float, b: float, ci: tuple[float, float], es_name: str, es: float) -> str:
    return f"b = {b:.2f}, 95% CI [{ci[0]:.2f}, {ci[1]:.2f}], z = {z:.2f}, {fmt_p(p)}, {es_name} = {es:.2f}"


def holm(tests: list[TestResult]) -> None:
    """Holm-adjust the p values of the tests that ran, in place (statsmodels multipletests, method='holm')."""
    from statsmodels.stats.multitest import multipletests

    ran = [t for t in tests if t.p is not None and math.isfinite(t.p)]
    if ran:
        adjusted = multipletests([t.p for t in ran], method="holm")[1]
        for t, pa in zip(ran, adjusted):
            t.p_adjusted = float(pa)
