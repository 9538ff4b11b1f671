using RolloutGate.Core.Runbooks;
using static RolloutGate.Core.Tests.Runbooks.QueryPlaceholdersTests;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// Placeholders in an alertmanager check's matcher values and an http check's URL (runbooks/README.md, "Placeholders"):
/// what loads, what is refused at which line, and what is asked for each environment, a hostile environment included.
/// </summary>
public sealed class CheckPlaceholdersTests
{
    private static string Runbook(string matchers = "['service=\"{{ service }}\"', 'env=\"{{ environment }}\"', 'pod=~\"{{ workload }}-.*\"']", string url = "http://{{ namespace }}.svc/health/{{ environment }}", string environments = "[staging, production]") => $$$"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: cart
          version: 1
        spec:
          service: cart
          environments: {{{environments}}}
          owner: U1
          decisionChannel: C1
          mesh:
            provider: istio
            namespace: shop-{{ environment }}
            workload: cart.v2
          preDeploy:
            checks:
              - name: alerts
                alertmanager:
                  matchers: {{{matchers}}}
              - name: health
                http:
                  url: '{{{url}}}'
          watch:
            interval: 5m
            metrics:
              - name: errors
                preset: error-rate
                max: 1%
        """;

    [Fact]
    public void Parse_MatcherAndUrlPlaceholders_LoadAsWrittenAndRenderForEachEnvironment()
    {
        var runbook = Valid(Runbook());
        Assert.Equal(["service=\"{{ service }}\"", "env=\"{{ environment }}\"", "pod=~\"{{ workload }}-.*\""], runbook.PreDeploy.Checks[0].Alertmanager!.Matchers);
        Assert.Equal("http://{{ namespace }}.svc/health/{{ environment }}", runbook.PreDeploy.Checks[1].Http!.Url);

        var staging = QueryPlaceholders.ForEnvironment(runbook, "staging").PreDeploy.Checks;
        var production = QueryPlaceholders.ForEnvironment(runbook, "production").PreDeploy.Checks;

        // The workload after =~ is matched literally: its '.' escaped for the regex, that backslash for the quoted value.
        Assert.Equal(["service=\"cart\"", "env=\"staging\"", "pod=~\"cart\\\\.v2-.*\""], staging[0].Alertmanager!.Matchers);
        Assert.Equal("env=\"production\"", production[0].Alertmanager!.Matchers[1]);
        Assert.Equal("http://shop-staging.svc/health/staging", staging[1].Http!.Url);
        Assert.Equal("http://shop-production.svc/health/production", production[1].Http!.Url);
    }

    [Theory]
    [InlineData("prod\"", "env=\"prod\\\"\"", "env=~\"prod\\\"\"")]
    [InlineData("a\\b", "env=\"a\\\\b\"", "env=~\"a\\\\\\\\b\"")]
    [InlineData("x\ny", "env=\"x\\ny\"", "env=~\"x\\ny\"")]
    [InlineData("a.b|.*", "env=\"a.b|.*\"", "env=~\"a\\\\.b\\\\|\\\\.\\\\*\"")]
    public void RenderMatcher_HostileEnvironment_StaysInsideItsValueAndMatchesLiterally(string environment, string equal, string regex)
    {
        // Alertmanager unescapes \\, \" and \n in a quoted value; after =~ the value is a regex matching the text only.
        var values = QueryPlaceholders.TextValues("cart", null, environment);

        Assert.Equal(equal, QueryPlaceholders.RenderMatcher("env=\"{{ environment }}\"", values));
        Assert.Equal(regex, QueryPlaceholders.RenderMatcher("env=~\"{{ environment }}\"", values));
    }

    [Fact]
    public void RenderUrl_HostileEnvironment_IsPercentEncodedWhereItStands()
    {
        var values = QueryPlaceholders.TextValues("cart", null, "x/../admin?token=1#");

        Assert.Equal("http://cart.svc/health/x%2F..%2Fadmin%3Ftoken%3D1%23", QueryPlaceholders.RenderUrl("http://cart.svc/health/{{ environment }}", values));
    }

    [Theory]
    [InlineData("['{{ environment }}=\"x\"']", "preDeploy.checks[0].alertmanager.matchers[0] must be a matcher such as service=\"checkout\" (operators =, !=, =~, !~; value in double quotes), got '{{ environment }}=\"x\"'; a placeholder stands only in the double-quoted value")]
    [InlineData("['env=\"{{ target }}\"']", "preDeploy.checks[0].alertmanager.matchers[0] (its value) has the unknown placeholder {{ target }} (known here: {{ service }}, {{ environment }}, {{ namespace }}, {{ workload }}); Flagger's")]
    [InlineData("['env=\"{{ environment }\"']", "preDeploy.checks[0].alertmanager.matchers[0] (its value) has '{{' that does not open a placeholder")]
    [InlineData("['env=\"{{ window }}\"']", "preDeploy.checks[0].alertmanager.matchers[0] (its value) has the unknown placeholder {{ window }}")]
    [InlineData("['env=~\"({{ environment }}\"']", "preDeploy.checks[0].alertmanager.matchers[0] has an invalid regular expression for environment 'staging': (staging")]
    public void Parse_BadMatcherPlaceholder_RefusedAtItsLine(string matchers, string reason)
    {
        var yaml = Runbook(matchers: matchers);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "matchers:"), error.Line);
        Assert.StartsWith(reason, error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://cart.svc/{{ interval }}", "[staging, production]", "preDeploy.checks[1].http.url has the unknown placeholder {{ interval }}")]
    [InlineData("http://cart.svc/{{ environment }", "[staging, production]", "preDeploy.checks[1].http.url has '{{' that does not open a placeholder")]
    [InlineData("{{ environment }}://cart.svc/", "[staging, production]", "preDeploy.checks[1].http.url '{{ environment }}://cart.svc/' is 'staging://cart.svc/' for environment 'staging', which is not an absolute http:// or https:// URL")]
    [InlineData("http://{{ environment }}.svc/", "[staging, \"pre prod\"]", "preDeploy.checks[1].http.url 'http://{{ environment }}.svc/' is 'http://pre%20prod.svc/' for environment 'pre prod', which is not an absolute http:// or https:// URL")]
    public void Parse_BadUrlPlaceholder_RefusedAtItsLineNamingTheEnvironment(string url, string environments, string reason)
    {
        var yaml = Runbook(url: url, environments: environments);

        // Each environment that renders no URL is named in an error of its own (and 'pre prod' is no namespace either).
        var error = Assert.Single(Errors(yaml), e => e.Reason.StartsWith(reason, StringComparison.Ordinal));

        Assert.Equal(LineOf(yaml, "url:"), error.Line);
    }
}
