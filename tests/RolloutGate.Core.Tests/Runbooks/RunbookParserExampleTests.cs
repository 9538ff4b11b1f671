using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>The runbooks shipped in runbooks/ are the contract's promise: they load as written, value for value.</summary>
public sealed class RunbookParserExampleTests
{
    [Fact]
    public void Parse_ContractExample_LoadsEveryValue()
    {
        var text = File.ReadAllText(RepositoryPath("runbooks/checkout.yaml"));

        var result = RunbookParser.Parse(text, "runbooks/checkout.yaml");

        Assert.Empty(result.Errors);
        Assert.True(result.IsValid);
        var runbook = result.Runbook!;
        Assert.Equal("checkout", runbook.Name);
        Assert.Equal(3, runbook.Version);
        Assert.Equal(RunbookParser.Sha256Of(text), runbook.Sha256);
        Assert.Matches("^[0-9a-f]{64}$", runbook.Sha256);
        Assert.Equal("checkout", runbook.Service);
        Assert.Equal(["production"], runbook.Environments);
        Assert.Equal("U024BE7LH", runbook.Owner);
        Assert.Equal(["U024BE7LH", "U0G9QF9C6"], runbook.Approvers);
        Assert.Equal("C0DECIDE01", runbook.DecisionChannel);
        Assert.Equal(new RunbookMesh(MeshProvider.Istio, "shop", "checkout"), runbook.Mesh);
        Assert.True(runbook.Governs("checkout", "production"));
        Assert.False(runbook.Governs("checkout", "staging"));

        Assert.Equal(TimeSpan.FromSeconds(30), runbook.PreDeploy.Timeout);
        Assert.Equal(["error-budget", "no-critical-alerts", "change-freeze", "payments-healthy"], runbook.PreDeploy.Checks.Select(c => c.Name));
        Assert.Equal(["prometheus", "alertmanager", "freeze", "http"], runbook.PreDeploy.Checks.Select(c => c.Kind));
        var prometheus = runbook.PreDeploy.Checks[0].Prometheus!;
        Assert.Equal(
            """sum(rate(istio_requests_total{destination_workload="checkout",response_code=~"5.."}[10m])) / sum(rate(istio_requests_total{destination_workload="checkout"}[10m]))""",
            prometheus.Query);
        Assert.Null(prometheus.Min);
        Assert.Equal(0.01, prometheus.Max);
        Assert.Equal(["service=\"checkout\"", "severity=\"critical\""], runbook.PreDeploy.Checks[1].Alertmanager!.Matchers);
        var freeze = runbook.PreDeploy.Checks[2].Freeze!;
        Assert.Equal("Europe/Berlin", freeze.TimeZone);
        Assert.Equal(["Fri 16:00 - Mon 08:00"], freeze.Windows);
        Assert.Equal([new WeeklyWindow(DayOfWeek.Friday, new TimeOnly(16, 0), DayOfWeek.Monday, new TimeOnly(8, 0))], freeze.WeeklyWindows);
        Assert.Empty(freeze.Dates);
        Assert.Equal(new HttpCheckSpec("http://payments.shop.svc/healthz", 200, null, null), runbook.PreDeploy.Checks[3].Http);

        Assert.Equal(TimeSpan.FromHours(24), runbook.Watch.Duration);
        Assert.Equal(TimeSpan.FromMinutes(1), runbook.Watch.Interval);
        Assert.Equal(TimeSpan.FromHours(24), runbook.Watch.Baseline);
        Assert.Equal(new StopRules(TimeSpan.FromMinutes(30)), runbook.Watch.StopRules);
        Assert.Equal(
            [
                new MetricSpec("p95-latency", "p95-latency", null, 0.8, 0.20, null),
                new MetricSpec("error-rate", "error-rate", null, 0.02, 0.50, null),
                new MetricSpec("cost-per-request", "cost-per-request", null, null, 0.15, new Pricing(0.031, 0.0042)),
            ],
            runbook.Watch.Metrics);

        Assert.Equal(
            new RollbackSpec(RollbackMode.Recommend, TimeSpan.FromMinutes(15), TimeoutAction.Rollback, new RollbackAction(Istio: new IstioRollback("checkout", "stable"))),
            runbook.Rollback);
    }

    [Fact]
    public void Parse_LinkerdExample_LoadsWithDatedFreezeAndLinkerdRollback()
    {
        var result = RunbookParser.Parse(File.ReadAllText(RepositoryPath("runbooks/payments-linkerd.yaml")), "runbooks/payments-linkerd.yaml");

        Assert.Empty(result.Errors);
        var runbook = result.Runbook!;
        Assert.Equal("payments", runbook.Service);
        Assert.Equal(MeshProvider.Linkerd, runbook.Mesh.Provider);
        Assert.Equal(new LinkerdRollback("payments-api", "payments-api-stable"), runbook.Rollback.Action!.Linkerd);
        Assert.Equal(RollbackMode.Auto, runbook.Rollback.Mode);
        Assert.Equal(0.995, runbook.PreDeploy.Checks[0].Prometheus!.Min!.Value, 10);
        var freeze = runbook.PreDeploy.Checks[2].Freeze!;
        Assert.Equal(
            [
                new DatedWindow(new DateTime(2026, 11, 26), new DateTime(2026, 12, 1), "Thanksgiving and Black Friday peak"),
                new DatedWindow(new DateTime(2026, 12, 24, 12, 0, 0), new DateTime(2027, 1, 3), "year-end close"),
            ],
            freeze.Dates);
        Assert.Equal(new HttpCheckSpec("https://ledger.payments.svc.cluster.local/healthz", 204, null, TimeSpan.FromSeconds(5)), runbook.PreDeploy.Checks[3].Http);
        Assert.Equal(1.5, runbook.Watch.Metrics[0].Max);
        Assert.Equal(0.005, runbook.Watch.Metrics[1].Max!.Value, 10);
        Assert.StartsWith("sum(rate(payments_declined_total", runbook.Watch.Metrics[2].Query, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromMinutes(15), runbook.Watch.StopRules.MaxBlind);
    }

    [Fact]
    public void Parse_EveryShippedRunbook_IsValid()
    {
        foreach (var path in Directory.GetFiles(RepositoryPath("runbooks"), "*.yaml"))
        {
            var result = RunbookParser.Parse(File.ReadAllText(path), path);
            Assert.True(result.IsValid, string.Join(Environment.NewLine, result.Errors));
        }
    }

    [Fact]
    public void Parse_EveryTruncationOfTheExample_ReportsErrorsWithoutThrowing()
    {
        var text = File.ReadAllText(RepositoryPath("runbooks/checkout.yaml"));
        var lines = text.Split('\n').Length;

        for (var length = 0; length < text.Length - 1; length++)
        {
            var result = RunbookParser.Parse(text[..length], "cut.yaml");

            Assert.False(result.IsValid && length < text.IndexOf("    metrics:", StringComparison.Ordinal), $"a runbook cut at {length} passed");
            Assert.All(result.Errors, e => Assert.InRange(e.Line, 1, lines));
        }
    }

    internal static string RepositoryPath(string relative)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RolloutGate.sln")))
        {
            directory = directory.Parent;
        }

        return directory is null
            ? throw new InvalidOperationException("RolloutGate.sln not found above " + AppContext.BaseDirectory)
            : Path.Combine(directory.FullName, relative);
    }
}
