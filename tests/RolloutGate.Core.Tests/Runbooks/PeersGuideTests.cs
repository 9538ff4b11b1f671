using System.Text.RegularExpressions;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// docs/coming-from-peers.md turns Flagger, Argo Rollouts, Kayenta and Keptn configurations into runbooks. Every runbook
/// in it must load as written (parser and schema, without a warning) and hold the values its text and comments say it
/// takes over from the peer's configuration, so a change of the format or of the guide cannot leave a reader with a
/// runbook that is refused or means something else.
/// </summary>
public sealed partial class PeersGuideTests
{
    private const string Guide = "docs/coming-from-peers.md";

    [Fact]
    public void Guide_EveryRunbook_LoadsWithoutErrorsOrWarnings()
    {
        var runbooks = GuideRunbooks();

        var problems = runbooks
            .SelectMany(r =>
            {
                var result = RunbookParser.Parse(r.Text, Guide);
                return result.Errors.Concat(result.Warnings).Select(e => $"{Guide}:{r.Line + e.Line}: {e.Reason}");
            })
            .ToList();
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
        Assert.Equal(["checkout", "ledger", "cart", "search", "orders"], runbooks.Select(r => Parse(r).Name));
        Assert.All(runbooks, r => Assert.Equal("yaml", r.Language));
        Assert.Empty(RunbookConflicts.Find(runbooks.Select(r => (Guide, Parse(r))))); // one folder may hold them all
    }

    [Fact]
    public void Guide_EveryRunbook_IsAcceptedByTheSchema()
    {
        var errors = GuideRunbooks().SelectMany(r => RunbookSchemaTests.SchemaErrors(r.Text).Select(e => $"{Guide}:{r.Line}: {e}")).ToList();

        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void Guide_FlaggerRunbook_WatchesThePrimaryWithFlaggersLimitsAndRollsBackThroughThePipeline()
    {
        var runbook = Runbook("checkout");

        Assert.Equal(new RunbookMesh(MeshProvider.Istio, "shop", "checkout-primary"), runbook.Mesh);
        Assert.Equal(["alertmanager", "freeze"], runbook.PreDeploy.Checks.Select(c => c.Kind));
        Assert.Equal(TimeSpan.FromHours(24), runbook.Watch.Duration);
        Assert.Equal(TimeSpan.FromDays(7), runbook.Watch.Baseline);
        Assert.Equal(TimeSpan.FromMinutes(5), runbook.Watch.Warmup);
        Assert.Equal(
            [
                new MetricSpec("error-rate", "error-rate", null, 0.01, 0.50, null),
                new MetricSpec("p95-latency", "p95-latency", null, 0.5, 0.20, null),
            ],
            runbook.Watch.Metrics);
        Assert.Equal(RollbackMode.Auto, runbook.Rollback.Mode);
        Assert.NotNull(runbook.Rollback.Action!.Webhook);
    }

    [Fact]
    public void Guide_FlaggerMetricTemplateRunbook_ReadsEachEnvironmentsClusterWithTheTemplatesNames()
    {
        var runbook = Runbook("ledger");

        Assert.Equal(["staging", "production"], runbook.Environments);
        var sent = QueryPlaceholders.ForEnvironment(runbook, "staging").Watch.Metrics.Single().Query!;
        Assert.Equal(
            "sum(rate(istio_requests_total{cluster=\"staging\",reporter=\"destination\",destination_workload_namespace=\"payments\",\n"
            + "  destination_workload=\"ledger-primary\",grpc_response_status=~\"2|4|12|13|14|15\"}[2m]))\n"
            + "/ sum(rate(istio_requests_total{cluster=\"staging\",reporter=\"destination\",destination_workload_namespace=\"payments\",\n"
            + "  destination_workload=\"ledger-primary\"}[2m]))\n",
            sent);
        Assert.Contains("cluster=\"production\"", QueryPlaceholders.ForEnvironment(runbook, "production").Watch.Metrics.Single().Query, StringComparison.Ordinal);
    }

    [Fact]
    public void Guide_ArgoRolloutsRunbook_TakesOverTheAnalysisTemplateAndAbortsTheRollout()
    {
        var runbook = Runbook("cart");

        Assert.Equal(0.005, runbook.PreDeploy.Checks.Single().Prometheus!.Max!.Value, 10);
        Assert.Equal(TimeSpan.FromMinutes(1), runbook.Watch.Interval);
        Assert.Equal(TimeSpan.FromMinutes(2), runbook.Watch.Warmup);
        Assert.Equal(
            [
                new MetricSpec("error-rate", "error-rate", null, 0.01, 0.50, null),
                new MetricSpec("p95-latency", "p95-latency", null, 0.4, 0.20, null),
            ],
            runbook.Watch.Metrics);
        Assert.Equal(new StopRules(TimeSpan.FromMinutes(10)), runbook.Watch.StopRules);
        Assert.Equal(
            new RollbackSpec(RollbackMode.Recommend, TimeSpan.FromMinutes(10), TimeoutAction.Rollback, new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback("cart"))),
            runbook.Rollback);
    }

    [Fact]
    public void Guide_KayentaRunbook_TakesOverTheEffectSizeAndDirectionAndLeavesTheDecisionToPeople()
    {
        var runbook = Runbook("search");

        Assert.Empty(runbook.PreDeploy.Checks);
        Assert.Equal(
            [
                new MetricSpec("p95-latency", "p95-latency", null, null, 0.20, null),
                new MetricSpec("error-rate", "error-rate", null, 0.02, 0.50, null),
                new MetricSpec("result-clicks", null, "sum(rate(search_result_clicks_total{namespace=\"search\",workload=\"search-api\"}[2m]))", null, 0.20, null)
                {
                    Worse = Worse.Lower, // Kayenta: direction decrease, allowedDecrease 0.8
                },
            ],
            runbook.Watch.Metrics);
        Assert.Equal(RollbackMode.Recommend, runbook.Rollback.Mode);
        Assert.Equal(TimeoutAction.Keep, runbook.Rollback.OnTimeout);
        Assert.NotNull(runbook.Rollback.Action!.Webhook);
    }

    [Fact]
    public void Guide_KeptnRunbook_TakesOverTheObjectivesAndGatesOnStaging()
    {
        var runbook = Runbook("orders");

        var staging = runbook.PreDeploy.Checks.Single().Prometheus!;
        Assert.Contains("destination_workload_namespace=\"staging\"", staging.Query, StringComparison.Ordinal);
        Assert.Equal(0.01, staging.Max!.Value, 10);
        Assert.Equal(
            [
                new MetricSpec("p95-latency", "p95-latency", null, 0.6, 0.10, null),
                new MetricSpec("error-rate", "error-rate", null, 0.01, null, null),
            ],
            runbook.Watch.Metrics);
        Assert.Equal(new RollbackSpec(RollbackMode.Recommend, TimeSpan.FromMinutes(30), TimeoutAction.Keep, null), runbook.Rollback);
    }

    private static Runbook Runbook(string name) => GuideRunbooks().Select(Parse).Single(r => r.Name == name);

    private static Runbook Parse(GuideBlock block) =>
        RunbookParser.Parse(block.Text, Guide).Runbook ?? throw new InvalidOperationException($"{Guide}:{block.Line}: the runbook does not load");

    /// <summary>
    /// Every fenced block of the guide that declares <c>kind: Runbook</c>, whatever its fence says, with the line of its
    /// opening fence (so that a problem is reported at the guide's own line: fence line + line in the block).
    /// </summary>
    private static List<GuideBlock> GuideRunbooks()
    {
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath(Guide)).ReplaceLineEndings("\n");
        return
        [
            .. FencedBlock().Matches(text)
                .Where(m => RunbookKind().IsMatch(m.Groups["body"].Value))
                .Select(m => new GuideBlock(m.Groups["language"].Value, m.Groups["body"].Value, text[..m.Index].Count(c => c == '\n') + 1)),
        ];
    }

    private sealed record GuideBlock(string Language, string Text, int Line);

    [GeneratedRegex(@"^```(?<language>[a-z]*)\n(?<body>.*?)^```$", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex FencedBlock();

    [GeneratedRegex(@"^kind:\s*Runbook\s*$", RegexOptions.Multiline)]
    private static partial Regex RunbookKind();
}
