using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// Placeholders in a runbook's queries (runbooks/README.md, "Placeholders"): what loads, what is refused at which line,
/// and what is sent for each environment, a hostile environment value included.
/// </summary>
public sealed class QueryPlaceholdersTests
{
    private const string File = "runbooks/cart.yaml";

    private const string CheckQuery = "sum(rate(http_requests_total{env=\"{{ environment }}\",code=~\"5..\"}[10m])) / sum(rate(http_requests_total{env=\"{{environment}}\"}[10m]))";

    private const string WatchQuery = "sum(rate(http_request_errors_total{service='{{ service }}',env=\"{{ environment }}\",namespace=\"{{ namespace }}\",pod=~\"{{ workload }}-.*\"}[{{ window }}])) * {{interval}}";

    private static string Runbook(string checkQuery = CheckQuery, string watchQuery = WatchQuery, string environments = "[staging, production]", string mesh = "istio") => $$"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: cart
          version: 1
        spec:
          service: cart
          environments: {{environments}}
          owner: U1
          decisionChannel: C1
          mesh:
            provider: {{mesh}}
            namespace: shop
            workload: cart.v2
          preDeploy:
            checks:
              - name: error-budget
                prometheus:
                  query: '{{checkQuery.Replace("'", "''", StringComparison.Ordinal)}}'
                  max: 0.01
          watch:
            interval: 5m
            metrics:
              - name: errors
                query: |
                  {{watchQuery.Replace("\n", "\n          ", StringComparison.Ordinal)}}
                max: 10
        """;

    [Fact]
    public void Parse_QueriesWithPlaceholders_LoadAsWrittenAndRenderForEachEnvironment()
    {
        var runbook = Valid(Runbook());

        Assert.Equal(CheckQuery, runbook.PreDeploy.Checks.Single().Prometheus!.Query);
        var staging = QueryPlaceholders.ForEnvironment(runbook, "staging");
        var production = QueryPlaceholders.ForEnvironment(runbook, "production");

        Assert.Equal(
            "sum(rate(http_requests_total{env=\"staging\",code=~\"5..\"}[10m])) / sum(rate(http_requests_total{env=\"staging\"}[10m]))",
            staging.PreDeploy.Checks.Single().Prometheus!.Query);
        // The workload after =~ is matched literally (its '.' escaped), the durations are written bare.
        Assert.Equal(
            "sum(rate(http_request_errors_total{service='cart',env=\"production\",namespace=\"shop\",pod=~\"cart\\\\.v2-.*\"}[5m])) * 5m\n",
            production.Watch.Metrics.Single().Query);
        Assert.Equal(runbook with { PreDeploy = staging.PreDeploy, Watch = staging.Watch }, staging);
        Assert.True(QueryPlaceholders.UsesEnvironment(runbook));
    }

    [Fact]
    public void ForEnvironment_NoPlaceholders_TheRunbookItselfWithItsQueriesAsWritten()
    {
        const string Plain = "sum(rate(x{a=\"{\"}[5m])) # no {placeholder} here";
        var runbook = Valid(Runbook(checkQuery: Plain, watchQuery: Plain));

        Assert.Same(runbook, QueryPlaceholders.ForEnvironment(runbook, "staging"));
        Assert.Equal(Plain, runbook.PreDeploy.Checks.Single().Prometheus!.Query);
        Assert.False(QueryPlaceholders.UsesEnvironment(runbook));
    }

    [Theory]
    [InlineData("prod\"} or vector(1) #", "env=\"prod\\\"} or vector(1) #\"")]
    [InlineData("prod\\\"} or vector(1)", "env=\"prod\\\\\\\"} or vector(1)\"")]
    [InlineData("prod\n} or vector(1)", "env=\"prod\\n} or vector(1)\"")]
    public void ForEnvironment_HostileEnvironment_StaysInsideItsString(string environment, string written)
    {
        // The webhook's environment is not the runbook author's: whatever it holds, the matcher's string ends where the
        // author ended it. Single-quoted strings and regex matchers the same.
        var runbook = Valid(Runbook());

        var rendered = QueryPlaceholders.ForEnvironment(runbook, environment);

        Assert.StartsWith($"sum(rate(http_requests_total{{{written},code=~\"5..\"}}[10m]))", rendered.PreDeploy.Checks.Single().Prometheus!.Query, StringComparison.Ordinal);
        Assert.Equal("x{a='it\\'s'}", QueryPlaceholders.Render("x{a='{{ environment }}'}", Values("it's")));
        Assert.Equal("x{a=~\"a\\\\.b\\\\|\\\"\\\\.\\\\*\"}", QueryPlaceholders.Render("x{a=~\"{{ environment }}\"}", Values("a.b|\".*")));
    }

    [Fact]
    public void Parse_UnknownPlaceholder_RefusedAtItsLineNamingTheKnownOnes()
    {
        var yaml = Runbook(watchQuery: "sum(rate(http_requests_total{\n  app=\"{{ target }}\"}[5m]))");

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "{{ target }}"), error.Line);
        Assert.Equal(
            "watch.metrics[0].query has the unknown placeholder {{ target }} (known here: {{ service }}, {{ environment }}, {{ namespace }}, {{ workload }}, {{ interval }}, {{ window }}); Flagger's {{ target }} is {{ workload }} here (mesh.workload)",
            error.Reason);
    }

    [Theory]
    [InlineData("sum(x{env=\"{{ environment }\"})", "'{{ environment }\"})'")]
    [InlineData("sum(x{env=\"{{ }}\"})", "'{{ }}\"})'")]
    [InlineData("sum(x{env=\"{{ environment | quote }}\"})", "'{{ environment | quote }…'")]
    // An emoji where the excerpt is cut: quoted before it, not half of it (U+FFFD wherever the error is shown).
    [InlineData("sum(x{env=\"{{ environment | quote \U0001F600 }}\"})", "'{{ environment | quote …'")]
    public void Parse_MalformedPlaceholder_RefusedAtItsLine(string query, string excerpt)
    {
        var yaml = Runbook(watchQuery: $"sum(up)\n+ {query}");

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "+ sum(x"), error.Line);
        Assert.StartsWith($"watch.metrics[0].query has '{{{{' that does not open a placeholder ({excerpt}): write {{{{ name }}}}", error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{{ interval }}")]
    [InlineData("{{ window }}")]
    public void Parse_DurationPlaceholderInAPreDeployCheck_RefusedAtTheCheck(string placeholder)
    {
        var yaml = Runbook(checkQuery: $"sum(rate(x[{placeholder}]))");

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, placeholder), error.Line);
        Assert.Equal(
            $"preDeploy.checks[0].prometheus.query has the unknown placeholder {placeholder} (known here: {{{{ service }}}}, {{{{ environment }}}}, {{{{ namespace }}}}, {{{{ workload }}}}); it has no value here: a pre-deploy check has no interval",
            error.Reason);
    }

    [Theory]
    [InlineData("sum(x{env={{ environment }}})", "outside a quoted string")]
    [InlineData("sum(x{env=`{{ environment }}`})", "inside a `raw string`, which cannot escape its value")]
    [InlineData("sum(x) # {{ environment }}", "in a comment")]
    public void Parse_TextPlaceholderOutsideAQuotedString_Refused(string query, string place)
    {
        var error = Assert.Single(Errors(Runbook(watchQuery: query)));

        Assert.StartsWith($"watch.metrics[0].query has {{{{ environment }}}} {place}: a text placeholder stands inside", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NamespacePlaceholderWithoutAMeshNamespace_Refused()
    {
        var yaml = Runbook().Replace("    namespace: shop\n    workload: cart.v2\n", "", StringComparison.Ordinal);

        var errors = Errors(yaml.Replace("mesh:\n    provider: istio", "mesh:\n    provider: none", StringComparison.Ordinal));

        Assert.Equal(
            [
                "watch.metrics[0].query has {{ namespace }}, but the runbook gives no mesh.namespace to put there",
                "watch.metrics[0].query has {{ workload }}, but the runbook gives no mesh.workload to put there",
            ],
            errors.Select(e => e.Reason));
    }

    private static IReadOnlyDictionary<string, string> Values(string environment) =>
        QueryPlaceholders.Values(Valid(Runbook()), environment);

    /// <summary>The runbook <paramref name="yaml"/> (as runbooks/cart.yaml) loads as.</summary>
    internal static Runbook Valid(string yaml)
    {
        var result = RunbookParser.Parse(yaml, File);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return result.Runbook!;
    }

    /// <summary>The errors <paramref name="yaml"/> (as runbooks/cart.yaml) is refused with.</summary>
    internal static IReadOnlyList<RunbookError> Errors(string yaml)
    {
        var result = RunbookParser.Parse(yaml, File);
        Assert.False(result.IsValid);
        Assert.All(result.Errors, e => Assert.Equal(File, e.File));
        return result.Errors;
    }

    internal static int LineOf(string yaml, string text) =>
        yaml.Split('\n').Select((line, index) => (line, index)).First(l => l.line.Contains(text, StringComparison.Ordinal)).index + 1;
}
