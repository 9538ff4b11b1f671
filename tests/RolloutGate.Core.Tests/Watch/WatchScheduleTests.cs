using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;

namespace RolloutGate.Core.Tests.Watch;

public sealed class WatchScheduleTests
{
    private static readonly DateTimeOffset Deployed = new(2026, 11, 21, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [Fact]
    public void DueTimes_NothingEvaluated_EveryIntervalFromDeployUpToNow()
    {
        var due = WatchSchedule.DueTimes(Deployed, Minute, null, Deployed.AddMinutes(3.5), Deployed.AddHours(1));

        Assert.Equal([Deployed.AddMinutes(1), Deployed.AddMinutes(2), Deployed.AddMinutes(3)], due);
    }

    [Fact]
    public void DueTimes_AfterDowntime_CatchesUpFromLastEvaluated()
    {
        var due = WatchSchedule.DueTimes(Deployed, Minute, Deployed.AddMinutes(10), Deployed.AddMinutes(13), Deployed.AddHours(1));

        Assert.Equal([Deployed.AddMinutes(11), Deployed.AddMinutes(12), Deployed.AddMinutes(13)], due);
    }

    [Fact]
    public void DueTimes_PastTheEnd_StopsAtWatchUntil()
    {
        var due = WatchSchedule.DueTimes(Deployed, Minute, Deployed.AddMinutes(58), Deployed.AddHours(5), Deployed.AddHours(1));

        Assert.Equal([Deployed.AddMinutes(59), Deployed.AddMinutes(60)], due);
    }

    [Fact]
    public void DueTimes_BeforeFirstInterval_None() =>
        Assert.Empty(WatchSchedule.DueTimes(Deployed, Minute, null, Deployed.AddSeconds(59), Deployed.AddHours(1)));

    [Fact]
    public void DueTimes_DeployBetweenMinutes_OnWholeMinutesFromOneIntervalAfterTheDeploy()
    {
        var deployed = Deployed.AddSeconds(20);

        var due = WatchSchedule.DueTimes(deployed, Minute, null, Deployed.AddMinutes(4.5), Deployed.AddHours(1));

        Assert.Equal([Deployed.AddMinutes(2), Deployed.AddMinutes(3), Deployed.AddMinutes(4)], due);
    }

    [Fact]
    public void First_TwoWatchesDeployedSecondsApart_EvaluateAtTheSameTimes() =>
        Assert.Equal(
            WatchSchedule.First(Deployed.AddSeconds(5), Minute),
            WatchSchedule.First(Deployed.AddSeconds(55), Minute));

    [Fact]
    public void Next_IntervalOfFiveMinutes_MultiplesOfFiveMinutesSinceTheEpoch()
    {
        var five = TimeSpan.FromMinutes(5);

        Assert.Equal(Deployed.AddMinutes(10), WatchSchedule.Next(Deployed.AddMinutes(1), five, null));
        Assert.Equal(Deployed.AddMinutes(15), WatchSchedule.Next(Deployed.AddMinutes(1), five, Deployed.AddMinutes(10)));
    }

    [Fact]
    public void After_EndOfWatchBetweenIntervals_LastTimeBeforeItCompletes()
    {
        var until = Deployed.AddMinutes(60.5);

        Assert.Equal(WatchOutcome.Continue, WatchConclusion.After([Evaluation(Verdict.Healthy)], Deployed.AddMinutes(59), until, Minute, Minute).Outcome);
        Assert.Equal(WatchOutcome.Completed, WatchConclusion.After([Evaluation(Verdict.Healthy)], Deployed.AddMinutes(60), until, Minute, Minute).Outcome);
    }

    [Fact]
    public void After_EndOfWatchOnAnEvaluationTime_TheEndIsEvaluatedAndCompletesNotTheTimeBefore()
    {
        // A watch ending on a whole minute has the end itself as its last due time (DueTimes_PastTheEnd_StopsAtWatchUntil):
        // the interval before it must not complete the watch an interval early, leaving that last time unjudged.
        var until = Deployed.AddMinutes(60);

        Assert.Equal(WatchOutcome.Continue, WatchConclusion.After([Evaluation(Verdict.Healthy)], Deployed.AddMinutes(59), until, Minute, Minute).Outcome);
        Assert.Equal(WatchOutcome.Completed, WatchConclusion.After([Evaluation(Verdict.Healthy)], until, until, Minute, Minute).Outcome);
    }

    private static MetricEvaluation Evaluation(Verdict verdict, int blindIntervals = 0, string explanation = "x") => new(
        "m", MetricKind.Latency, Deployed, verdict, null, null, null, 0, 10, DetectorState.Initial with { BlindIntervals = blindIntervals }, explanation);

    [Fact]
    public void After_AnyRegression_Regressed()
    {
        var conclusion = WatchConclusion.After(
            [Evaluation(Verdict.Healthy), Evaluation(Verdict.BreachOfMax, explanation: "p95 above max")], Deployed, Deployed, Minute, Minute);

        Assert.Equal(WatchOutcome.Regressed, conclusion.Outcome);
        Assert.Equal("p95 above max", conclusion.Reason);
    }

    [Fact]
    public void After_AllBlindLongerThanMaxBlind_StoppedWithReason()
    {
        var conclusion = WatchConclusion.After(
            [Evaluation(Verdict.Blind, 11), Evaluation(Verdict.Blind, 12)], Deployed, Deployed.AddHours(1), Minute, TimeSpan.FromMinutes(10));

        Assert.Equal(WatchOutcome.StoppedBlind, conclusion.Outcome);
        Assert.Contains("11m", conclusion.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void After_BlindForExactlyMaxBlind_Continues() =>
        Assert.Equal(WatchOutcome.Continue, WatchConclusion.After(
            [Evaluation(Verdict.Blind, 10)], Deployed, Deployed.AddHours(1), Minute, TimeSpan.FromMinutes(10)).Outcome);

    [Fact]
    public void After_OneMetricSeesData_NotStoppedBlind() =>
        Assert.Equal(WatchOutcome.Continue, WatchConclusion.After(
            [Evaluation(Verdict.Blind, 50), Evaluation(Verdict.InsufficientData)], Deployed, Deployed.AddHours(1), Minute, TimeSpan.FromMinutes(10)).Outcome);

    [Fact]
    public void After_LastIntervalHealthy_Completed()
    {
        var conclusion = WatchConclusion.After([Evaluation(Verdict.Healthy)], Deployed, Deployed, Minute, Minute);

        Assert.Equal(WatchOutcome.Completed, conclusion.Outcome);
        Assert.Equal("the watch ran its full duration without a regression", conclusion.Reason);
    }

    [Fact]
    public void After_CompletedWithIntervalsThatGotNoVerdict_SaysForWhichMetricsAndHowMany()
    {
        // A low-traffic service judged in 12 of its 1440 intervals: "without a regression" alone read as 24 hours of health.
        MetricEvaluation Seen(string metric, int noVerdict) => Evaluation(Verdict.Healthy) with
        {
            Metric = metric,
            State = DetectorState.Initial with { Evaluations = 1440, NoVerdictIntervals = noVerdict },
        };

        var conclusion = WatchConclusion.After(
            [Seen("p95-latency", 1428), Seen("cost-per-request", 0), Seen("error-rate", 3)], Deployed, Deployed, Minute, Minute);

        Assert.Equal(WatchOutcome.Completed, conclusion.Outcome);
        Assert.Equal(
            "the watch ran its full duration without a regression; no verdict for p95-latency in 1428 of its 1440 intervals, "
            + "for error-rate in 3 of its 1440 intervals (no data, or too few requests)",
            conclusion.Reason);
    }

    [Fact]
    public void QuantileBeyondLastFiniteBucket_RankInInfBucket_LastFiniteBound()
    {
        HistogramBucket[] buckets = [new(100, 50), new(250, 90), new(double.PositiveInfinity, 100)];

        Assert.Equal(250, HistogramTail.QuantileBeyondLastFiniteBucket(buckets, 0.95));
        Assert.Null(HistogramTail.QuantileBeyondLastFiniteBucket(buckets, 0.9));
    }

    [Fact]
    public void QuantileBeyondLastFiniteBucket_OneBoundWrittenTwoWays_CountsBothSeries()
    {
        // Across an upgrade to Prometheus 3: le="250" until it, le="250.0" after; 96 of 100 observations at or below 250 ms.
        HistogramBucket[] buckets = [new(100, 30), new(250, 48), new(100, 20), new(250, 48), new(double.PositiveInfinity, 100)];

        Assert.Null(HistogramTail.QuantileBeyondLastFiniteBucket(buckets, 0.95));
        Assert.Equal(250, HistogramTail.QuantileBeyondLastFiniteBucket(buckets, 0.97));
    }

    [Fact]
    public void QuantileBeyondLastFiniteBucket_NoObservations_Null() =>
        Assert.Null(HistogramTail.QuantileBeyondLastFiniteBucket([new(100, 0), new(double.PositiveInfinity, 0)], 0.95));
}
