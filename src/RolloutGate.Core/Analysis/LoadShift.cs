namespace RolloutGate.Core.Analysis;

/// <summary>An interval's load adjustment (<see cref="BaselineWindow.LoadShiftAt"/>), all on the log scale.</summary>
/// <param name="Load">u = ln n − ln n_ref: the interval's count against the count's own seasonal reference.</param>
/// <param name="Applied">u_c, <paramref name="Load"/> credited: towards <paramref name="Expected"/> and no further, within ±<paramref name="Range"/>.</param>
/// <param name="Elasticity">β̂, the load elasticity fitted on the baseline.</param>
/// <param name="LogShift">β̂ u_c: what the reference's log moves by for that load.</param>
/// <param name="LogMargin">q · SE · |u_c|: how far β̂'s error may move it (the residual is taken beyond it).</param>
/// <param name="Range">The largest |u| adjusted for: the baseline's own swings of load.</param>
/// <param name="Expected">The load the hours before the deploy lead to expect, against the same reference (see <see cref="LoadAdjustment"/>).</param>
public sealed record LoadShift(double Load, double Applied, double Elasticity, double LogShift, double LogMargin, double Range, double Expected);
