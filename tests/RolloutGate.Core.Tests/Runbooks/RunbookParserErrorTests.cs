using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// Each way a runbook can be wrong, with the line a person has to look at. Every test starts from a small valid runbook
/// and breaks one thing, so the error under test is the only one.
/// </summary>
public sealed class RunbookParserErrorTests
{
    private const string File = "runbooks/test.yaml";

    private const string Valid = """
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: checkout
          version: 1
        spec:
          service: checkout
          environments: [production]
          owner: U1
          decisionChannel: C1
          mesh:
            provider: istio
            namespace: shop
            workload: checkout
          preDeploy:
            checks:
              - name: freeze
                freeze:
                  timezone: Europe/Berlin
                  windows: ["Fri 16:00 - Mon 08:00"]
          watch:
            metrics:
              - name: latency
                preset: p95-latency
                max: 800ms
          rollback:
            action:
              istio:
                virtualService: checkout
                stableSubset: stable

        """;

    [Fact]
    public void Parse_MinimalRunbook_AppliesDefaults()
    {
        var runbook = AssertValid(Valid);

        Assert.Empty(runbook.Approvers);
        Assert.Equal(TimeSpan.FromSeconds(30), runbook.PreDeploy.Timeout);
        Assert.Equal(TimeSpan.FromHours(24), runbook.Watch.Duration);
        Assert.Equal(TimeSpan.FromMinutes(1), runbook.Watch.Interval);
        Assert.Equal(TimeSpan.FromDays(7), runbook.Watch.Baseline);
        Assert.Equal(TimeSpan.FromMinutes(30), runbook.Watch.StopRules.MaxBlind);
        Assert.Equal(RollbackMode.Recommend, runbook.Rollback.Mode);
        Assert.Equal(TimeSpan.FromMinutes(15), runbook.Rollback.ApprovalTimeout);
        Assert.Equal(TimeoutAction.Keep, runbook.Rollback.OnTimeout);
    }

    [Fact]
    public void Parse_UnknownField_ReportsItsLine()
    {
        var yaml = Valid.Replace("        max: 800ms", "        max: 800ms\n        maxIncrase: 20%", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(new RunbookError(File, LineOf(yaml, "maxIncrase"), "unknown field 'maxIncrase' in watch.metrics[0] (expected one of: name, preset, query, max, min, maxIncrease, pricing, worse)"), error);
    }

    [Theory]
    [InlineData("apiVersion: rolloutgate/v1", "apiVersion: rolloutgate/v2", "apiVersion must be 'rolloutgate/v1', got 'rolloutgate/v2'")]
    [InlineData("kind: Runbook", "kind: Pipeline", "kind must be 'Runbook', got 'Pipeline'")]
    [InlineData("  name: checkout", "  name: Check_Out", "metadata.name must be a DNS label")]
    [InlineData("  version: 1", "  version: 0", "metadata.version must be a positive whole number, got '0'")]
    [InlineData("  version: 1", "  version: one", "metadata.version must be a positive whole number, got 'one'")]
    [InlineData("  environments: [production]", "  environments: []", "environments needs at least one environment (it is an empty list)")]
    [InlineData("  environments: [production]", "  environments: production", "environments must be a list, got 'production'")]
    [InlineData("  environments: [production]", "  environments: [production, production]", "environments[1] repeats 'production'")]
    [InlineData("  environments: [production]", "  environments: [' production']", "environments[0] ' production' has blanks at its start or end, which no name it is compared with would have")]
    [InlineData("  owner: U1", "  owner: [U1]", "owner must be text, got a list")]
    [InlineData("    provider: istio", "    provider: consul", "mesh.provider must be one of: istio, linkerd, none; got 'consul'")]
    [InlineData("          timezone: Europe/Berlin", "          timezone: Mars/Olympus", "preDeploy.checks[0].freeze.timezone 'Mars/Olympus' is not a known time zone")]
    [InlineData("Fri 16:00 - Mon 08:00", "Friday 16:00 - Mon 8:00", "preDeploy.checks[0].freeze.windows[0] must be a weekly window")]
    [InlineData("Fri 16:00 - Mon 08:00", "Fri 25:00 - Mon 08:00", "preDeploy.checks[0].freeze.windows[0] must be a weekly window")]
    [InlineData("Fri 16:00 - Mon 08:00", "FRI 16:00 - Mon 08:00", "preDeploy.checks[0].freeze.windows[0] must be a weekly window")]
    [InlineData("Fri 16:00 - Mon 08:00", "Fri 16:00 - Fri 16:00", "preDeploy.checks[0].freeze.windows[0] must be a weekly window")]
    [InlineData("        max: 800ms", "        max: 2%", "watch.metrics[0].max must be a latency such as 800ms or 1.5s")]
    [InlineData("        max: 800ms", "        max: fast", "watch.metrics[0].max must be a latency")]
    [InlineData("        preset: p95-latency", "        preset: p99-latency", "watch.metrics[0].preset must be one of: p95-latency, error-rate, request-rate, cost-per-request; got 'p99-latency'")]
    [InlineData("    action:", "    mode: sometimes\n    action:", "rollback.mode must be one of: auto, recommend; got 'sometimes'")]
    [InlineData("    action:", "    onTimeout: maybe\n    action:", "rollback.onTimeout must be one of: rollback, keep; got 'maybe'")]
    [InlineData("    action:", "    approvalTimeout: 15 minutes\n    action:", "rollback.approvalTimeout must be a duration such as 500ms, 30s, 15m, 24h or 1h30m, got '15 minutes'")]
    public void Parse_InvalidValue_ReportsReasonAtValueLine(string line, string replacement, string reason)
    {
        var yaml = Valid.Replace(line, replacement, StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, replacement.Split('\n')[0]), error.Line);
        Assert.StartsWith(reason, error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("  service: checkout\n", "missing required field 'service' in spec")]
    [InlineData("  owner: U1\n", "missing required field 'owner' in spec")]
    [InlineData("  decisionChannel: C1\n", "missing required field 'decisionChannel' in spec")]
    [InlineData("    namespace: shop\n", "missing required field 'namespace' in mesh")]
    public void Parse_MissingRequiredField_ReportsTheMappingLine(string removed, string reason)
    {
        var error = Assert.Single(Errors(Valid.Replace(removed, "", StringComparison.Ordinal)));

        Assert.Equal(reason, error.Reason);
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("15m", 900_000)]
    [InlineData("24h", 86_400_000)]
    [InlineData("1h30m", 5_400_000)]
    [InlineData("500ms", 500)]
    [InlineData("1m30s500ms", 90_500)]
    [InlineData("1.5s", 1_500)]
    public void Parse_Duration_AcceptsPrometheusSpellings(string text, int milliseconds)
    {
        var runbook = AssertValid(Valid.Replace("  preDeploy:\n", $"  preDeploy:\n    timeout: {text}\n", StringComparison.Ordinal));

        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), runbook.PreDeploy.Timeout);
    }

    [Theory]
    [InlineData("30")]
    [InlineData("0s")]
    [InlineData("30m1h")]
    [InlineData("-5m")]
    [InlineData("5 m")]
    [InlineData("1h1h")]
    public void Parse_BadDuration_IsRefused(string text)
    {
        var error = Assert.Single(Errors(Valid.Replace("  preDeploy:\n", $"  preDeploy:\n    timeout: {text}\n", StringComparison.Ordinal)));

        Assert.StartsWith("preDeploy.timeout must be a duration", error.Reason, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every duration has a longest value, said at its line. Before, these loaded (or, for the interval, threw an
    /// OverflowException out of the parser), and the times a deploy adds them to could not be held.
    /// </summary>
    [Theory]
    [InlineData("  watch:\n", "    interval: 400d\n", "watch.interval '400d' is too long: a watch's durations and rollback.approvalTimeout are at most 365d (a year)")]
    [InlineData("  watch:\n", "    duration: 4000000d\n", "watch.duration '4000000d' is too long: a watch's durations")]
    [InlineData("  watch:\n", "    baseline: 800000d\n", "watch.baseline '800000d' is too long: a watch's durations")]
    [InlineData("  watch:\n", "    warmup: 366d\n", "watch.warmup '366d' is too long: a watch's durations")]
    [InlineData("  watch:\n", "    stopRules: {maxBlind: 365d1ms}\n", "watch.stopRules.maxBlind '365d1ms' is too long: a watch's durations")]
    [InlineData("  rollback:\n", "    approvalTimeout: 9999d\n", "rollback.approvalTimeout '9999d' is too long: a watch's durations")]
    [InlineData("  preDeploy:\n", "    timeout: 50d\n", "preDeploy.timeout '50d' is too long: a pre-deploy timeout is at most 24h (the pipeline waits for the checks' answer)")]
    [InlineData("  preDeploy:\n", "    timeout: 24h1s\n", "preDeploy.timeout '24h1s' is too long: a pre-deploy timeout is at most 24h")]
    [InlineData("    checks:\n", "      - {name: health, http: {url: http://x/, timeout: 25h}}\n", "preDeploy.checks[0].http.timeout '25h' is too long: a pre-deploy timeout is at most 24h")]
    [InlineData("  watch:\n", "    duration: 365d\n    baseline: 365d\n    warmup: 364d\n    stopRules: {maxBlind: 365d}\n", null)]
    [InlineData("  preDeploy:\n", "    timeout: 24h\n", null)]
    public void Parse_DurationLongerThanItsLongest_IsRefusedAtItsLine(string section, string fields, string? reason)
    {
        var yaml = Valid.Replace(section, section + fields, StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
        if (reason is not null)
        {
            Assert.Equal(LineOf(yaml, fields.Trim()), Assert.Single(Errors(yaml)).Line);
        }
    }

    /// <summary>
    /// A watch's interval is at least 10s, said at its line. Before, 1ms and 1s loaded with the default 7d baseline: a baseline
    /// read and kept at one sample per interval, and evaluations asked far faster than the sweep stores them. With a
    /// duration beside it, the refused interval is not also reported as "not shorter than the duration".
    /// </summary>
    [Theory]
    [InlineData("    interval: 1ms\n", "watch.interval '1ms' is too short: a watch's interval is at least 10s")]
    [InlineData("    interval: 1s\n", "watch.interval '1s' is too short: a watch's interval is at least 10s")]
    [InlineData("    interval: 9s999ms\n", "watch.interval '9s999ms' is too short: a watch's interval is at least 10s")]
    [InlineData("    duration: 30s\n    interval: 1s\n", "watch.interval '1s' is too short: a watch's interval is at least 10s")]
    [InlineData("    interval: 10s\n", null)]
    public void Parse_IntervalShorterThanItsShortest_IsRefusedAtItsLine(string fields, string? reason)
    {
        var yaml = Valid.Replace("  watch:\n", "  watch:\n" + fields, StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
        if (reason is not null)
        {
            Assert.Equal(LineOf(yaml, "interval:"), Assert.Single(Errors(yaml)).Line);
        }
    }

    /// <summary>With a maxIncrease, the baseline's length is checked against twelve intervals: that product threw an OverflowException out of the parser.</summary>
    [Fact]
    public void Parse_IntervalTooLongWithAMaxIncrease_IsAnErrorNotAnOverflow()
    {
        var yaml = Valid
            .Replace("  watch:\n", "  watch:\n    interval: 10675199d\n", StringComparison.Ordinal)
            .Replace("        max: 800ms\n", "        maxIncrease: 20%\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(new RunbookError(File, LineOf(yaml, "interval:"), "watch.interval '10675199d' is too long: a watch's durations and rollback.approvalTimeout are at most 365d (a year)"), error);
    }

    /// <summary>
    /// Nesting past the limit is a syntax error at the line of the level too many. Before, YamlDotNet's recursive loader
    /// overflowed the stack on 100,000 brackets (a 200 KB file): the process crashed, the service and the test host alike.
    /// </summary>
    [Theory]
    [InlineData(100, null)]
    [InlineData(101, "YAML syntax error: lists and mappings are nested more than 100 levels deep here")]
    [InlineData(100_000, "YAML syntax error: lists and mappings are nested more than 100 levels deep here")]
    public void Parse_NestingDeeperThanTheLimit_IsASyntaxErrorAtItsLine(int depth, string? reason)
    {
        // The top level, spec, watch, metrics and its first item are five levels; the brackets of its worse are the rest.
        var brackets = depth - 5;
        var yaml = Valid.Replace("      - name: latency\n", $"      - name: latency\n        worse: {new string('[', brackets)}{new string(']', brackets)}\n", StringComparison.Ordinal);

        var errors = RunbookParser.Parse(yaml, File).Errors;

        if (reason is null)
        {
            Assert.DoesNotContain(errors, e => e.Reason.Contains("nested", StringComparison.Ordinal));
        }
        else
        {
            var error = Assert.Single(errors);
            Assert.StartsWith(reason, error.Reason, StringComparison.Ordinal);
            Assert.Equal(LineOf(yaml, "worse: ["), error.Line);
        }
    }

    [Fact]
    public void Parse_ByteOrderMark_IsReadAndHashedWithTheFile()
    {
        var bytes = System.Text.Encoding.UTF8.GetPreamble().Concat(System.Text.Encoding.UTF8.GetBytes(Valid)).ToArray();

        var runbook = AssertValid(System.Text.Encoding.UTF8.GetString(bytes));

        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)), runbook.Sha256);
    }

    [Theory]
    [InlineData(256, null)]
    [InlineData(257, "watch.metrics[0].name is 257 characters long; a metric name is at most 256 characters")]
    public void Parse_MetricNameLongerThanTheEvaluationKeyTakes_IsAnError(int length, string? reason)
    {
        AssertOutcome(Valid.Replace("      - name: latency", $"      - name: {new string('l', length)}", StringComparison.Ordinal), reason);
    }

    [Theory]
    [InlineData("    namespace: shop", "    namespace: Shop", "mesh.namespace must be a Kubernetes namespace name, a DNS label")]
    [InlineData("    namespace: shop", "    namespace: shop_eu", "mesh.namespace must be a Kubernetes namespace name, a DNS label")]
    [InlineData("        virtualService: checkout", "        virtualService: checkout.eu-1", null)]
    [InlineData("        virtualService: checkout", "        virtualService: Checkout", "rollback.action.istio.virtualService must be a Kubernetes object name, a DNS subdomain")]
    [InlineData("        virtualService: checkout", "        virtualService: checkout/v2", "rollback.action.istio.virtualService must be a Kubernetes object name, a DNS subdomain")]
    public void Parse_KubernetesNameTheApiServerCannotHold_IsAnError(string line, string replacement, string? reason)
    {
        AssertOutcome(Valid.Replace(line, replacement, StringComparison.Ordinal), reason);
    }

    [Fact]
    public void Parse_KubernetesNamesAtTheirLimits()
    {
        var label = "s" + new string('-', 61) + "p";
        var subdomain = string.Join('.', Enumerable.Repeat(new string('c', 63), 4))[..253];

        AssertOutcome(Valid.Replace("namespace: shop", $"namespace: {label}", StringComparison.Ordinal).Replace("virtualService: checkout", $"virtualService: {subdomain}", StringComparison.Ordinal), null);
        AssertOutcome(Valid.Replace("namespace: shop", $"namespace: {label}x", StringComparison.Ordinal), "mesh.namespace must be");
        AssertOutcome(Valid.Replace("virtualService: checkout", $"virtualService: {subdomain}c", StringComparison.Ordinal), "rollback.action.istio.virtualService must be");
    }

    [Fact]
    public void Parse_EmptyFile_IsAnErrorOnLineOne()
    {
        var error = Assert.Single(RunbookParser.Parse("  \n# only a comment\n", File).Errors);

        Assert.Equal(1, error.Line);
        Assert.Contains("empty", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_FileOverOneMebibyte_IsRefusedAtTheLineThatPassesTheLimit()
    {
        // A valid runbook followed by comments, as a generated or pasted file might be: 100-byte lines (99 + the newline).
        var padding = string.Concat(Enumerable.Range(0, 20_000).Select(_ => $"# {new string('x', 97)}\n"));
        var yaml = Valid + padding;
        var fits = Valid + padding[..(RunbookParser.MaxFileBytes - System.Text.Encoding.UTF8.GetByteCount(Valid))];

        var error = Assert.Single(Errors(yaml));

        Assert.Equal($"the file is {System.Text.Encoding.UTF8.GetByteCount(yaml)} bytes long; a runbook file is at most 1048576 bytes (1 MiB), and this line passes that size", error.Reason);
        var lineStarts = fits.Count(c => c == '\n');
        Assert.Equal(lineStarts + 1, error.Line);
        AssertValid(fits);
    }

    [Fact]
    public void Parse_YamlSyntaxError_ReportsTheLineOfTheParser()
    {
        var yaml = "apiVersion: rolloutgate/v1\nkind: Runbook\nmetadata:\n  name: [checkout\n  version: 1\n";

        var error = Assert.Single(RunbookParser.Parse(yaml, File).Errors);

        Assert.True(error.Line is 4 or 5 or 6, error.ToString());
        Assert.StartsWith("YAML syntax error: ", error.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain("Idx:", error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("  service: checkout\n", "   service: checkout\n")] // too far: noticed at the next line
    [InlineData("  service: checkout\n", " service: checkout\n")] // too little: the next line reads as its value
    [InlineData("  service: checkout\n", "service: checkout\n")] // out to the top level, leaving spec empty
    [InlineData("  owner: U1\n", "\towner: U1\n")] // a tab, which YamlDotNet places at line 1
    // Where the parser's line is already the one to edit, it stays.
    [InlineData("  owner: U1\n", "   owner: U1\n")]
    [InlineData("    namespace: shop\n", "   namespace: shop\n")]
    [InlineData("        stableSubset: stable\n", "       stableSubset: stable\n")]
    [InlineData("  owner: U1\n", "  owner: U1: x\n")]
    public void Parse_MisindentedLine_ReportsThatLine(string line, string misindented)
    {
        var yaml = Valid.Replace(line, misindented, StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.StartsWith("YAML syntax error: ", error.Reason, StringComparison.Ordinal);
        Assert.Equal(LineOf(yaml, misindented.TrimEnd('\n')), error.Line);
    }

    [Fact]
    public void Parse_KeyIndentedTooFar_SaysWhereTheParserNoticed()
    {
        var yaml = Valid.Replace("  service: checkout\n", "   service: checkout\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(
            $"{File}:7: YAML syntax error: While parsing a block mapping, did not find expected key. (noticed at line 8; this line is indented differently from the lines after it)",
            error.ToString());
    }

    [Fact]
    public void Parse_DuplicateKey_IsAnErrorNotAnException()
    {
        var yaml = Valid.Replace("  owner: U1\n", "  owner: U1\n  owner: U2\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "owner: U2"), error.Line);
    }

    [Fact]
    public void Parse_MultipleDocuments_ReportsTheSecond()
    {
        var yaml = Valid + "\n---\n" + Valid;

        var error = Assert.Single(Errors(yaml));

        Assert.Contains("2 YAML documents", error.Reason, StringComparison.Ordinal);
        Assert.Equal(Valid.Split('\n').Length + 2, error.Line);
    }

    [Theory]
    [InlineData("just text")]
    [InlineData("- a\n- b")]
    public void Parse_RootNotAMapping_IsAnError(string yaml)
    {
        var error = Assert.Single(Errors(yaml));

        Assert.StartsWith("the runbook must be a mapping of fields", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_CheckWithTwoKinds_IsRefused()
    {
        var yaml = Valid.Replace(
            "          windows: [\"Fri 16:00 - Mon 08:00\"]\n",
            "          windows: [\"Fri 16:00 - Mon 08:00\"]\n        http:\n          url: http://x/healthz\n",
            StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "        http:"), error.Line);
        Assert.Equal("preDeploy.checks[0] has more than one check kind (freeze, http); give exactly one", error.Reason);
    }

    [Fact]
    public void Parse_CheckWithoutKind_IsRefused()
    {
        var yaml = Valid.Replace("      - name: freeze\n", "      - name: nothing\n      - name: freeze\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "name: nothing"), error.Line);
        Assert.Equal("preDeploy.checks[0] needs exactly one check kind: prometheus, alertmanager, freeze, http", error.Reason);
    }

    [Fact]
    public void Parse_DuplicateCheckName_IsRefused()
    {
        var yaml = Valid.Replace(
            "      - name: freeze\n",
            "      - name: freeze\n        http: {url: http://x/}\n      - name: freeze\n",
            StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "        http:") + 1, error.Line);
        Assert.Equal("check name 'freeze' is used twice in preDeploy.checks; names must be unique", error.Reason);
    }

    [Theory]
    [InlineData("query: up\n          max: 1", null)]
    [InlineData("query: up\n          min: 0.9", null)]
    [InlineData("query: up", "preDeploy.checks[0].prometheus needs at least one of: min, max")]
    [InlineData("max: 1", "missing required field 'query' in preDeploy.checks[0].prometheus")]
    [InlineData("query: up\n          min: 2\n          max: 1", "preDeploy.checks[0].prometheus.min (2) is above max (1); the check could never pass")]
    [InlineData("query: up\n          max: lots", "preDeploy.checks[0].prometheus.max must be a number (or a percentage such as 1%), got 'lots'")]
    public void Parse_PrometheusCheck_NeedsQueryAndABound(string body, string? reason)
    {
        var yaml = Valid.Replace(
            "        freeze:\n          timezone: Europe/Berlin\n          windows: [\"Fri 16:00 - Mon 08:00\"]\n",
            $"        prometheus:\n          {body}\n",
            StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
    }

    [Theory]
    [InlineData("""['service="checkout"', 'severity=~"crit.*"', 'team!="x"', 'env!~"dev|test"']""", null)]
    [InlineData("""['service=checkout']""", "preDeploy.checks[0].alertmanager.matchers[0] must be a matcher such as service=\"checkout\"")]
    [InlineData("""['1abc="x"']""", "preDeploy.checks[0].alertmanager.matchers[0] must be a matcher")]
    [InlineData("""['severity=~"(crit"']""", "preDeploy.checks[0].alertmanager.matchers[0] has an invalid regular expression: (crit")]
    [InlineData("[]", "preDeploy.checks[0].alertmanager.matchers needs at least one matcher (it is an empty list)")]
    public void Parse_AlertmanagerMatchers_AreValidated(string matchers, string? reason)
    {
        var yaml = Valid.Replace(
            "        freeze:\n          timezone: Europe/Berlin\n          windows: [\"Fri 16:00 - Mon 08:00\"]\n",
            $"        alertmanager:\n          matchers: {matchers}\n",
            StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
    }

    [Theory]
    [InlineData("url: https://example.com/healthz\n          expectStatus: 204\n          bodyContains: ok\n          timeout: 5s", null)]
    [InlineData("url: /healthz", "preDeploy.checks[0].http.url must be an absolute http:// or https:// URL, got '/healthz'")]
    [InlineData("url: ftp://example.com/", "preDeploy.checks[0].http.url must be an absolute http:// or https:// URL, got 'ftp://example.com/'")]
    [InlineData("url: ftp://probe:s3cret@example.com/?token=s3cret", "preDeploy.checks[0].http.url must be an absolute http:// or https:// URL, got 'ftp://example.com/?…'")]
    [InlineData("url: http://x/\n          expectStatus: 700", "preDeploy.checks[0].http.expectStatus must be an HTTP status code between 100 and 599, got '700'")]
    [InlineData("expectStatus: 200", "missing required field 'url' in preDeploy.checks[0].http")]
    public void Parse_HttpCheck_IsValidated(string body, string? reason)
    {
        var yaml = Valid.Replace(
            "        freeze:\n          timezone: Europe/Berlin\n          windows: [\"Fri 16:00 - Mon 08:00\"]\n",
            $"        http:\n          {body}\n",
            StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
    }

    [Theory]
    [InlineData("dates:\n            - {from: 2026-12-24, to: 2026-12-26, reason: holidays}", null)]
    [InlineData("dates:\n            - {from: 2026-12-24T18:00, to: 2026-12-24T20:00}", null)]
    [InlineData("dates:\n            - {from: 2026-12-26, to: 2026-12-24}", "preDeploy.checks[0].freeze.dates[0].to must be after from")]
    [InlineData("dates:\n            - {from: 24.12.2026, to: 2026-12-26}", "preDeploy.checks[0].freeze.dates[0].from must be an ISO date")]
    [InlineData("dates:\n            - {from: 2026-12-24}", "missing required field 'to' in preDeploy.checks[0].freeze.dates[0]")]
    [InlineData("dates: []", null)]
    [InlineData("reason: none", "unknown field 'reason' in preDeploy.checks[0].freeze")]
    // Days some zone cannot place in years 1 to 9999: the first threw an ArgumentOutOfRangeException, the others loaded.
    [InlineData("dates:\n            - {from: 2026-12-24, to: 9999-12-31}", "preDeploy.checks[0].freeze.dates[0].to '9999-12-31' is out of range: a freeze's dates lie from 0001-01-02 to 9999-12-30")]
    [InlineData("dates:\n            - {from: 2026-12-24, to: 9999-12-31T23:59}", "preDeploy.checks[0].freeze.dates[0].to '9999-12-31T23:59' is out of range")]
    [InlineData("dates:\n            - {from: 0001-01-01, to: 2026-12-26}", "preDeploy.checks[0].freeze.dates[0].from '0001-01-01' is out of range")]
    [InlineData("dates:\n            - {from: 0001-01-02, to: 9999-12-30}", null)]
    public void Parse_FreezeDates_AreValidated(string body, string? reason)
    {
        var yaml = Valid.Replace("          windows: [\"Fri 16:00 - Mon 08:00\"]\n", $"          {body}\n", StringComparison.Ordinal);

        // Replacing the windows may leave the freeze empty; that error belongs to another test.
        AssertOutcome(yaml, reason, ignoring: "needs at least one of: windows, dates");
    }

    [Fact]
    public void Parse_FreezeDateOnlyEnd_CoversTheWholeLastDay()
    {
        var yaml = Valid.Replace("          windows: [\"Fri 16:00 - Mon 08:00\"]\n", "          dates: [{from: 2026-12-24, to: 2026-12-26}]\n", StringComparison.Ordinal);

        var dated = Assert.Single(AssertValid(yaml).PreDeploy.Checks[0].Freeze!.Dates);

        Assert.Equal(new DatedWindow(new DateTime(2026, 12, 24), new DateTime(2026, 12, 27), null), dated);
    }

    private const string FreezeFix = "Give a weekly window (windows: [\"Fri 16:00 - Mon 08:00\"]) or a date range "
        + "(dates: [{from: 2026-12-24, to: 2026-12-26}]), or remove the check";

    [Fact]
    public void Parse_FreezeWithoutWindowsOrDates_IsRefused()
    {
        var yaml = Valid.Replace("          windows: [\"Fri 16:00 - Mon 08:00\"]\n", "", StringComparison.Ordinal);

        Assert.Equal(
            new RunbookError(File, LineOf(yaml, "timezone: Europe/Berlin"),
                "preDeploy.checks[0].freeze needs at least one of: windows, dates; a freeze with neither never fails. " + FreezeFix),
            Assert.Single(Errors(yaml)));
    }

    /// <summary>
    /// Empty lists freeze nothing either: <c>windows: []</c> loaded, and the check passed at every moment although the
    /// runbook reads as a freeze, without a word. A warning at the empty list, not an error: such a runbook loaded before,
    /// and a version in force or on record must still load after an upgrade. A window or a date in the other list is enough.
    /// </summary>
    [Theory]
    [InlineData("windows: []", "windows: []", "windows is an empty list")]
    [InlineData("dates: []", "dates: []", "dates is an empty list")]
    [InlineData("windows: []\n          dates: []", "windows: []", "both are empty lists")]
    [InlineData("windows: []\n          dates: [{from: 2026-12-24, to: 2026-12-26}]", null, null)]
    [InlineData("windows: [\"Sat 00:00 - Sun 00:00\"]\n          dates: []", null, null)]
    public void Parse_FreezeWithEmptyLists_LoadsWithAWarningAtTheEmptyList(string body, string? at, string? written)
    {
        var yaml = Valid.Replace("          windows: [\"Fri 16:00 - Mon 08:00\"]\n", $"          {body}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.True(result.IsValid, string.Join('\n', result.Errors));
        if (at is null)
        {
            Assert.Empty(result.Warnings);
            return;
        }

        Assert.Equal(
            new RunbookError(File, LineOf(yaml, at), $"preDeploy.checks[0].freeze freezes nothing ({written}): this check never fails. " + FreezeFix),
            Assert.Single(result.Warnings));
    }

    [Fact]
    public void Parse_FreezeWindowsNotAList_IsReportedOnce()
    {
        var yaml = Valid.Replace("          windows: [\"Fri 16:00 - Mon 08:00\"]\n", "          windows: Fri 16:00 - Mon 08:00\n", StringComparison.Ordinal);

        Assert.Equal("preDeploy.checks[0].freeze.windows must be a list, got 'Fri 16:00 - Mon 08:00'", Assert.Single(Errors(yaml)).Reason);
    }

    [Theory]
    [InlineData("preset: p95-latency\n        max: 1.5s", null)]
    [InlineData("preset: p95-latency\n        max: 0.25", null)]
    [InlineData("preset: error-rate\n        max: 2%", null)]
    [InlineData("preset: error-rate\n        max: 0.02", null)]
    [InlineData("preset: error-rate\n        max: 150%", "watch.metrics[0].max must be a rate such as 2%")]
    [InlineData("preset: error-rate\n        max: 800ms", "watch.metrics[0].max must be a rate such as 2%")]
    [InlineData("preset: request-rate\n        max: 1000", null)]
    [InlineData("query: sum(rate(x[5m]))\n        max: 5%", null)]
    [InlineData("query: sum(rate(x[5m]))\n        max: 300ms", null)]
    [InlineData("preset: error-rate\n        maxIncrease: 0.5", "watch.metrics[0].maxIncrease must be a percentage such as 20%, got '0.5'")]
    [InlineData("preset: error-rate", "watch.metrics[0] needs at least one of: max, min, maxIncrease")]
    [InlineData("preset: p95-latency\n        min: 5ms", null)]
    [InlineData("preset: p95-latency\n        min: 2%", "watch.metrics[0].min must be a latency such as 800ms or 1.5s")]
    [InlineData("preset: error-rate\n        min: 0.1%", null)]
    [InlineData("preset: error-rate\n        min: 150%", "watch.metrics[0].min must be a rate such as 2%")]
    [InlineData("preset: request-rate\n        min: 10", null)]
    [InlineData("preset: request-rate\n        min: 10%", "watch.metrics[0].min must be a number that is not negative")]
    [InlineData("preset: request-rate\n        min: -1", "watch.metrics[0].min must be a number that is not negative")]
    [InlineData("query: sum(rate(x[5m]))\n        min: 80%", null)]
    [InlineData("query: sum(rate(x[5m]))\n        min: 50\n        max: 50", null)]
    [InlineData("max: 1", "watch.metrics[0] needs exactly one metric source: preset, query")]
    [InlineData("preset: error-rate\n        query: up\n        max: 1", "watch.metrics[0] has more than one metric source (preset, query); give exactly one")]
    [InlineData("preset: cost-per-request\n        maxIncrease: 10%", "missing required field 'pricing' in watch.metrics[0]")]
    [InlineData("preset: cost-per-request\n        maxIncrease: 10%\n        pricing: {cpuCoreHour: 0.03}", "missing required field 'memoryGiBHour' in watch.metrics[0].pricing")]
    [InlineData("preset: cost-per-request\n        maxIncrease: 10%\n        pricing: {cpuCoreHour: -1, memoryGiBHour: 0.1}", "watch.metrics[0].pricing.cpuCoreHour must be a price that is not negative, got '-1'")]
    [InlineData("preset: error-rate\n        max: 1%\n        pricing: {cpuCoreHour: 1, memoryGiBHour: 1}", "watch.metrics[0].pricing only applies to preset cost-per-request")]
    public void Parse_Metric_IsValidated(string body, string? reason)
    {
        var yaml = Valid.Replace("        preset: p95-latency\n        max: 800ms\n", $"        {body}\n", StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
    }

    [Fact]
    public void Parse_MetricValues_AreInBaseUnits()
    {
        var yaml = Valid.Replace(
            "        preset: p95-latency\n        max: 800ms\n",
            "        preset: p95-latency\n        max: 1.5s\n        maxIncrease: 20%\n      - name: errors\n        preset: error-rate\n        max: 2%\n",
            StringComparison.Ordinal);

        var metrics = AssertValid(yaml).Watch.Metrics;

        Assert.Equal(new MetricSpec("latency", "p95-latency", null, 1.5, 0.20, null), metrics[0]);
        Assert.Equal(new MetricSpec("errors", "error-rate", null, 0.02, null, null), metrics[1]);
    }

    [Fact]
    public void Parse_MetricMin_InTheBaseUnitOfItsPresetAsMaxIs()
    {
        var yaml = Valid.Replace(
            "        preset: p95-latency\n        max: 800ms\n",
            "        preset: p95-latency\n        max: 800ms\n        min: 5ms\n" +
            "      - name: errors\n        preset: error-rate\n        min: 0.1%\n" +
            "      - name: traffic\n        preset: request-rate\n        min: 10\n        maxIncrease: 30%\n" +
            "      - name: hit-ratio\n        query: sum(rate(hits[5m])) / sum(rate(lookups[5m]))\n        min: 80%\n",
            StringComparison.Ordinal);

        var metrics = AssertValid(yaml).Watch.Metrics;

        Assert.Equal([0.005, 0.001, 10, 0.8], metrics.Select(m => m.Min!.Value));
        Assert.Equal(new MetricSpec("latency", "p95-latency", null, 0.8, null, null) { Min = 0.005 }, metrics[0]);
        Assert.Null(metrics[1].Max);
        Assert.Equal(0.30, metrics[2].MaxIncrease);
    }

    [Theory]
    [InlineData("preset: p95-latency\n        max: 800ms\n        min: 1s", "watch.metrics[0].min (1s) is above max (800ms); the metric could never be within both")]
    [InlineData("query: sum(rate(orders_total[5m])) * 60\n        min: 50\n        max: 40", "watch.metrics[0].min (50) is above max (40); the metric could never be within both")]
    public void Parse_MetricMinAboveItsMax_IsRefusedAtTheLineOfMin(string body, string reason)
    {
        var yaml = Valid.Replace("        preset: p95-latency\n        max: 800ms\n", $"        {body}\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(reason, error.Reason);
        Assert.Equal(LineOf(yaml, "min:"), error.Line);
    }

    [Fact]
    public void Parse_QueryWithWorseLower_IsJudgedOnADrop()
    {
        var yaml = Valid.Replace(
            "        preset: p95-latency\n        max: 800ms\n",
            "        preset: p95-latency\n        max: 800ms\n" +
            "      - name: orders\n        query: sum(rate(orders_total[5m]))\n        maxIncrease: 30%\n        max: 500\n        worse: lower\n" +
            "      - name: queue-depth\n        query: sum(queue_depth)\n        max: 100\n        worse: higher\n",
            StringComparison.Ordinal);

        var metrics = AssertValid(yaml).Watch.Metrics;

        Assert.Equal(Worse.Higher, metrics[0].Worse); // unless written: higher, what every runbook before worse meant
        Assert.Equal(new MetricSpec("orders", null, "sum(rate(orders_total[5m]))", 500, 0.30, null) { Worse = Worse.Lower }, metrics[1]);
        Assert.Equal(Worse.Higher, metrics[2].Worse);
        Assert.NotEqual(metrics[1], metrics[1] with { Worse = Worse.Higher });
    }

    [Theory]
    [InlineData("preset: request-rate\n        maxIncrease: 30%\n        worse: lower",
        "watch.metrics[0].worse applies only to a query metric; for preset request-rate lower is always worse: its maxIncrease watches for a drop, its max for a surge")]
    [InlineData("preset: p95-latency\n        max: 800ms\n        worse: higher", "watch.metrics[0].worse applies only to a query metric; for preset p95-latency higher is always worse")]
    [InlineData("preset: error-rate\n        maxIncrease: 50%\n        worse: lower", "watch.metrics[0].worse applies only to a query metric; for preset error-rate higher is always worse")]
    [InlineData("query: sum(rate(orders_total[5m]))\n        max: 500\n        worse: lower",
        "watch.metrics[0].worse: lower needs a maxIncrease, the limit it turns into a drop below the baseline; max stays an upper limit either way")]
    [InlineData("query: sum(rate(orders_total[5m]))\n        maxIncrease: 100%\n        worse: lower",
        "watch.metrics[0].worse: lower reads maxIncrease 100% as a drop of 100% below the baseline, which no value can fall beyond; give a drop below 100%")]
    [InlineData("query: sum(rate(orders_total[5m]))\n        maxIncrease: 150%\n        worse: lower",
        "watch.metrics[0].worse: lower reads maxIncrease 150% as a drop of 150% below the baseline, which no value can fall beyond; give a drop below 100%")]
    [InlineData("query: sum(rate(orders_total[5m]))\n        maxIncrease: 30%\n        worse: decrease", "watch.metrics[0].worse must be one of: higher, lower; got 'decrease'")]
    [InlineData("query: sum(rate(orders_total[5m]))\n        maxIncrease: 30%\n        worse: Lower", "watch.metrics[0].worse must be one of: higher, lower; got 'Lower'")]
    public void Parse_Worse_IsRefusedWhereItCannotApply_AtItsLine(string body, string reason)
    {
        var yaml = Valid.Replace("        preset: p95-latency\n        max: 800ms\n", $"        {body}\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "worse:"), error.Line);
        Assert.StartsWith(reason, error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DuplicateMetricName_IsRefused()
    {
        var yaml = Valid.Replace("        max: 800ms\n", "        max: 800ms\n      - name: latency\n        query: up\n        max: 1\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal("metric name 'latency' is used twice in watch.metrics; names must be unique", error.Reason);
        Assert.Equal(LineOf(yaml, "query: up") - 1, error.Line);
    }

    [Fact]
    public void Parse_PresetWithoutMesh_IsRefused()
    {
        var yaml = Valid
            .Replace("    provider: istio\n    namespace: shop\n    workload: checkout\n", "    provider: none\n", StringComparison.Ordinal)
            .Replace("    action:\n      istio:\n        virtualService: checkout\n        stableSubset: stable\n", "    action:\n      webhook: {url: https://cd.example/rollback, secret: s3cret}\n", StringComparison.Ordinal);

        var error = Assert.Single(Errors(yaml));

        Assert.Equal(LineOf(yaml, "preset: p95-latency"), error.Line);
        Assert.Equal("watch.metrics[0].preset 'p95-latency' needs mesh.provider istio or linkerd; with no mesh give a query instead", error.Reason);
    }

    [Theory]
    [InlineData("duration: 1h\n    interval: 1h", "watch.interval (1h) must be shorter than watch.duration (1h)")]
    [InlineData("duration: 1m", "watch.interval (1m by default) must be shorter than watch.duration (1m)")]
    [InlineData("interval: 2d", "watch.interval (2d) must be shorter than watch.duration (24h by default)")]
    [InlineData("baseline: forever", "watch.baseline must be a duration")]
    [InlineData("stopRules: {maxBlind: 10m}", null)]
    [InlineData("warmup: 0s", null)]
    [InlineData("warmup: soon", "watch.warmup must be a duration")]
    [InlineData("warmup: -5m", "watch.warmup must be a duration")]
    [InlineData("duration: 1h\n    warmup: 1h", "watch.warmup (1h) must be shorter than watch.duration (1h), or nothing would ever be compared with the baseline")]
    [InlineData("warmup: 2d", "watch.warmup (2d) must be shorter than watch.duration (24h by default), or nothing would ever be compared with the baseline")]
    [InlineData("stopRules: {maxBlind: 10m, minSeen: 3}", "unknown field 'minSeen' in watch.stopRules (expected one of: maxBlind)")]
    [InlineData("onNewerDeploy: supersede", "watch.onNewerDeploy must be one of: keep, stop; got 'supersede'")]
    [InlineData("onNewerDeploy: Stop", "watch.onNewerDeploy must be one of: keep, stop; got 'Stop'")]
    public void Parse_Watch_IsValidated(string body, string? reason)
    {
        var yaml = Valid.Replace("  watch:\n", $"  watch:\n    {body}\n", StringComparison.Ordinal);

        AssertOutcome(yaml, reason);
    }

    [Theory]
    [InlineData(null, 0)]
    [InlineData("warmup: 5m", 5)]
    public void Parse_Warmup_IsTheWatchsWithZeroByDefault(string? body, int minutes)
    {
        var yaml = body is null ? Valid : Valid.Replace("  watch:\n", $"  watch:\n    {body}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.True(result.IsValid, string.Join('\n', result.Errors));
        Assert.Equal(TimeSpan.FromMinutes(minutes), result.Runbook!.Watch.Warmup);
    }

    [Theory]
    [InlineData(null, NewerDeployAction.Keep)]
    [InlineData("onNewerDeploy: keep", NewerDeployAction.Keep)]
    [InlineData("onNewerDeploy: stop", NewerDeployAction.Stop)]
    public void Parse_OnNewerDeploy_IsTheWatchsWithKeepByDefault(string? body, NewerDeployAction expected)
    {
        var yaml = body is null ? Valid : Valid.Replace("  watch:\n", $"  watch:\n    {body}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.True(result.IsValid, string.Join('\n', result.Errors));
        Assert.Equal(expected, result.Runbook!.Watch.OnNewerDeploy);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("timezone: Europe/Berlin", "Europe/Berlin")]
    [InlineData("timezone: America/New_York", "America/New_York")]
    public void Parse_WatchTimeZone_IsTheWatchsWithUtcByDefault(string? body, string? zone)
    {
        var yaml = body is null ? Valid : Valid.Replace("  watch:\n", $"  watch:\n    {body}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.True(result.IsValid, string.Join('\n', result.Errors));
        Assert.Equal(zone, result.Runbook!.Watch.TimeZone);
    }

    [Theory]
    [InlineData("timezone: Europe/Berlim", "watch.timezone 'Europe/Berlim' is not a known time zone (use an IANA name such as Europe/Berlin)")]
    [InlineData("timezone: Europe", "watch.timezone 'Europe' is not a known time zone (use an IANA name such as Europe/Berlin)")]
    [InlineData("timezone: [Europe/Berlin]", "watch.timezone must be text, got a list")]
    public void Parse_WatchTimeZoneNotAZone_ReportsFileLineAndReason(string body, string reason)
    {
        var yaml = Valid.Replace("  watch:\n", $"  watch:\n    {body}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.False(result.IsValid);
        Assert.Null(result.Runbook);
        // The watch's line, not the freeze check's own timezone above it.
        Assert.Equal(new RunbookError(File, Array.IndexOf(yaml.Split('\n'), $"    {body}") + 1, reason), Assert.Single(result.Errors));
    }

    [Theory]
    [InlineData("baseline: 10m", "maxIncrease: 20%", "baseline: 10m", "watch.baseline (10m) holds 10 intervals of 1m, fewer than the 12 that maxIncrease (of metric 'latency') is judged against, so that limit will be insufficient-data at every interval: make the baseline at least 12m, or give that metric only a max")]
    [InlineData("baseline: 0.5s", "maxIncrease: 20%", "baseline: 0.5s", "watch.baseline (0.5s) holds 0 intervals of 1m, fewer than the 12")]
    [InlineData("duration: 30d\n    interval: 15h", "maxIncrease: 20%", "interval: 15h", "watch.baseline (7d by default) holds 11 intervals of 15h, fewer than the 12 that maxIncrease (of metric 'latency') is judged against, so that limit will be insufficient-data at every interval: make the baseline at least 180h")]
    [InlineData("baseline: 6m\n    interval: 30s", "maxIncrease: 20%", null, null)]
    [InlineData("baseline: 10m", "# only a max: no baseline needed", null, null)]
    public void Parse_BaselineShorterThanMaxIncreaseNeeds_IsAcceptedWithAWarning(string body, string limit, string? at, string? warning)
    {
        var yaml = Valid.Replace("  watch:\n", $"  watch:\n    {body}\n", StringComparison.Ordinal)
            .Replace("        max: 800ms\n", $"        max: 800ms\n        {limit}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.True(result.IsValid, string.Join('\n', result.Errors));
        if (warning is null)
        {
            Assert.Empty(result.Warnings);
            return;
        }

        var said = Assert.Single(result.Warnings);
        Assert.StartsWith(warning, said.Reason, StringComparison.Ordinal);
        Assert.Equal(LineOf(yaml, at!), said.Line);
    }

    /// <summary>
    /// request-rate reads maxIncrease as a drop: 100% or more is a drop no traffic but none reaches. Refused for a query
    /// with worse: lower; for the preset a warning, so that a runbook already in force still loads.
    /// </summary>
    [Theory]
    [InlineData("100%", true)]
    [InlineData("150%", true)]
    [InlineData("60%", false)]
    public void Parse_RequestRateDropOfAHundredPercentOrMore_IsAcceptedWithAWarning(string maxIncrease, bool warned)
    {
        var yaml = Valid.Replace("        max: 800ms\n", $"        max: 800ms\n      - name: traffic\n        preset: request-rate\n        maxIncrease: {maxIncrease}\n", StringComparison.Ordinal);

        var result = RunbookParser.Parse(yaml, File);

        Assert.True(result.IsValid, string.Join('\n', result.Errors));
        if (!warned)
        {
            Assert.Empty(result.Warnings);
            return;
        }

        var said = Assert.Single(result.Warnings);
        Assert.Equal(LineOf(yaml, $"maxIncrease: {maxIncrease}"), said.Line);
        Assert.StartsWith($"watch.metrics[1].maxIncrease {maxIncrease} on preset request-rate is a drop of {maxIncrease} below the baseline, which only no traffic at all reaches",
            said.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_WatchWithoutMetrics_IsRefused()
    {
        var yaml = Valid.Replace("      - name: latency\n        preset: p95-latency\n        max: 800ms\n", "", StringComparison.Ordinal)
            .Replace("    metrics:\n", "    metrics: []\n", StringComparison.Ordinal);

        Assert.StartsWith("watch.metrics needs at least one metric (it is an empty list)", Assert.Single(Errors(yaml)).Reason, StringComparison.Ordinal);
    }

    /// <summary>
    /// An empty list that must hold something is refused at its line with what the list is for, what an empty one would
    /// do and an example to write instead. It said "environments must not be empty", what was wrong and no more. Each
    /// example, put in place of the empty list, makes the runbook valid: it is written as a runbook takes it. The same list
    /// written with no value ("metrics:", YAML null) gets the same advice at its key: it said "missing required field
    /// 'metrics' in watch", at the line of watch, to someone who had written metrics.
    /// </summary>
    [Theory]
    [InlineData("  environments: [production]", "  environments: []",
        "environments needs at least one environment (it is an empty list); a runbook governs a change only in an environment it lists, "
        + "so with none it would govern no change. Give one, for example environments: [production] (the environment names the CD webhooks send)",
        "environments: [production]")]
    [InlineData("        freeze:\n          timezone: Europe/Berlin\n          windows: [\"Fri 16:00 - Mon 08:00\"]", "        alertmanager:\n          matchers: []",
        "preDeploy.checks[0].alertmanager.matchers needs at least one matcher (it is an empty list); with none the check would match every active alert, "
        + "of every service, and fail while any of them fires. Give one, for example matchers: ['service=\"{{ service }}\"', 'severity=\"critical\"']",
        "matchers: ['service=\"{{ service }}\"', 'severity=\"critical\"']")]
    [InlineData("    metrics:\n      - name: latency\n        preset: p95-latency\n        max: 800ms", "    metrics: []",
        "watch.metrics needs at least one metric (it is an empty list); a watch with none would judge nothing after the deploy, and never find a regression "
        + "to roll back. Give one, for example metrics: [{name: error-rate, preset: error-rate, max: 2%}]",
        "metrics: [{name: error-rate, preset: error-rate, max: 2%}]")]
    // Without a mesh there is no preset to give: the example is a query.
    [InlineData("    metrics:\n      - name: latency\n        preset: p95-latency\n        max: 800ms", "    metrics: []",
        "watch.metrics needs at least one metric (it is an empty list); a watch with none would judge nothing after the deploy, and never find a regression "
        + "to roll back. Give one, for example metrics: [{name: errors, query: 'sum(rate(http_requests_total{code=~\"5..\"}[5m]))', max: 1}]",
        "metrics: [{name: errors, query: 'sum(rate(http_requests_total{code=~\"5..\"}[5m]))', max: 1}]",
        true)]
    [InlineData("  environments: [production]", "  environments:",
        "environments needs at least one environment (it has no value); a runbook governs a change only in an environment it lists, "
        + "so with none it would govern no change. Give one, for example environments: [production] (the environment names the CD webhooks send)",
        "environments: [production]")]
    [InlineData("  environments: [production]", "  environments: ~",
        "environments needs at least one environment (it has no value); a runbook governs a change only in an environment it lists, "
        + "so with none it would govern no change. Give one, for example environments: [production] (the environment names the CD webhooks send)",
        "environments: [production]")]
    [InlineData("        freeze:\n          timezone: Europe/Berlin\n          windows: [\"Fri 16:00 - Mon 08:00\"]", "        alertmanager:\n          matchers:",
        "preDeploy.checks[0].alertmanager.matchers needs at least one matcher (it has no value); with none the check would match every active alert, "
        + "of every service, and fail while any of them fires. Give one, for example matchers: ['service=\"{{ service }}\"', 'severity=\"critical\"']",
        "matchers: ['service=\"{{ service }}\"', 'severity=\"critical\"']")]
    [InlineData("    metrics:\n      - name: latency\n        preset: p95-latency\n        max: 800ms", "    metrics:",
        "watch.metrics needs at least one metric (it has no value); a watch with none would judge nothing after the deploy, and never find a regression "
        + "to roll back. Give one, for example metrics: [{name: error-rate, preset: error-rate, max: 2%}]",
        "metrics: [{name: error-rate, preset: error-rate, max: 2%}]")]
    public void Parse_EmptyRequiredList_SaysWhatItIsForAndWhatToWrite(string line, string empty, string reason, string example, bool noMesh = false)
    {
        var yaml = Valid.Replace(line, empty, StringComparison.Ordinal);
        if (noMesh)
        {
            // The rollback action patches an Istio VirtualService, which needs a namespace: keep it, drop the mesh.
            yaml = yaml.Replace("    provider: istio\n", "    provider: none\n", StringComparison.Ordinal);
        }

        var emptyLine = empty.Split('\n')[^1];
        Assert.Equal(new RunbookError(File, LineOf(yaml, emptyLine), reason), Assert.Single(Errors(yaml)));
        AssertValid(yaml.Replace(emptyLine.Trim(), example, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("linkerd: {httpRoute: checkout, stableBackend: checkout-stable}", null)]
    [InlineData("smi: {trafficSplit: checkout, stableBackend: checkout-stable}", null)]
    [InlineData("argoRollouts: {rollout: checkout}", null)]
    [InlineData("webhook: {url: https://cd.example/rollback, secret: s3cret}", null)]
    [InlineData("webhook: {url: cd.example/rollback, secret: s3cret}", "rollback.action.webhook.url must be an absolute http:// or https:// URL")]
    [InlineData("webhook: {url: 'deployer:s3cret@cd.example/rollback', secret: s3cret}", "rollback.action.webhook.url must be an absolute http:// or https:// URL, got 'cd.example/rollback'")]
    [InlineData("webhook: {url: https://cd.example/rollback}", "missing required field 'secret' in rollback.action.webhook")]
    [InlineData("istio: {virtualService: checkout}", "missing required field 'stableSubset' in rollback.action.istio")]
    [InlineData("helm: {release: checkout}", "unknown field 'helm' in rollback.action (expected one of: istio, linkerd, smi, argoRollouts, webhook)")]
    [InlineData("argoRollouts: {rollout: checkout}\n      smi: {trafficSplit: a, stableBackend: b}", "rollback.action has more than one rollback action (smi, argoRollouts); give exactly one")]
    public void Parse_RollbackAction_IsValidated(string body, string? reason)
    {
        var yaml = Valid.Replace("      istio:\n        virtualService: checkout\n        stableSubset: stable\n", $"      {body}\n", StringComparison.Ordinal);

        // An unknown action leaves no known one; that error belongs to another test.
        AssertOutcome(yaml, reason, ignoring: "rollback.action needs exactly one");
    }

    [Fact]
    public void Parse_AutoModeWithoutAction_IsRefused()
    {
        var yaml = Valid.Replace("    action:\n      istio:\n        virtualService: checkout\n        stableSubset: stable\n", "    mode: auto\n", StringComparison.Ordinal);

        Assert.Equal("missing required field 'action' in rollback", Assert.Single(Errors(yaml)).Reason);
    }

    [Fact]
    public void Parse_RecommendWithoutAction_IsAllowed()
    {
        var yaml = Valid.Replace("    action:\n      istio:\n        virtualService: checkout\n        stableSubset: stable\n", "    mode: recommend\n", StringComparison.Ordinal);

        Assert.Null(AssertValid(yaml).Rollback.Action);
    }

    [Fact]
    public void Parse_ManyErrors_AreAllReported()
    {
        var yaml = Valid
            .Replace("apiVersion: rolloutgate/v1", "apiVersion: v1", StringComparison.Ordinal)
            .Replace("  version: 1", "  version: -2", StringComparison.Ordinal)
            .Replace("  owner: U1\n", "  ownr: U1\n", StringComparison.Ordinal)
            .Replace("    provider: istio", "    provider: envoy", StringComparison.Ordinal)
            .Replace("        max: 800ms", "        max: 800ms\n        maxIncrase: 20%", StringComparison.Ordinal)
            .Replace("        stableSubset: stable", "        stableSubset: [stable]", StringComparison.Ordinal);

        var errors = Errors(yaml);

        Assert.Equal(
            [
                (LineOf(yaml, "apiVersion"), "apiVersion must be 'rolloutgate/v1', got 'v1'"),
                (LineOf(yaml, "version: -2"), "metadata.version must be a positive whole number, got '-2'"),
                (LineOf(yaml, "spec:") + 1, "missing required field 'owner' in spec"),
                (LineOf(yaml, "ownr"), "unknown field 'ownr' in spec (expected one of: service, environments, owner, approvers, decisionChannel, mesh, preDeploy, watch, rollback)"),
                (LineOf(yaml, "provider: envoy"), "mesh.provider must be one of: istio, linkerd, none; got 'envoy'"),
                (LineOf(yaml, "maxIncrase"), "unknown field 'maxIncrase' in watch.metrics[0] (expected one of: name, preset, query, max, min, maxIncrease, pricing, worse)"),
                (LineOf(yaml, "stableSubset"), "rollback.action.istio.stableSubset must be text, got a list"),
            ],
            errors.Select(e => (e.Line, e.Reason)).OrderBy(e => e.Line));
        Assert.All(errors, e => Assert.Equal(File, e.File));
    }

    [Fact]
    public void Parse_Error_FormatsAsFileLineReason()
    {
        var error = Assert.Single(Errors(Valid.Replace("kind: Runbook", "kind: Job", StringComparison.Ordinal)));

        Assert.Equal("runbooks/test.yaml:2: kind must be 'Runbook', got 'Job'", error.ToString());
    }

    private static IReadOnlyList<RunbookError> Errors(string yaml)
    {
        var result = RunbookParser.Parse(yaml, File);
        Assert.Null(result.Runbook);
        Assert.False(result.IsValid);
        return result.Errors;
    }

    private static Runbook AssertValid(string yaml)
    {
        var result = RunbookParser.Parse(yaml, File);
        Assert.True(result.IsValid, string.Join(Environment.NewLine, result.Errors));
        return result.Runbook!;
    }

    /// <summary>Valid when <paramref name="reason"/> is null, else exactly one error starting with it (besides any <paramref name="ignoring"/>).</summary>
    private static void AssertOutcome(string yaml, string? reason, string? ignoring = null)
    {
        var errors = RunbookParser.Parse(yaml, File).Errors
            .Where(e => ignoring is null || !e.Reason.Contains(ignoring, StringComparison.Ordinal))
            .ToList();
        if (reason is null)
        {
            Assert.Empty(errors);
        }
        else
        {
            Assert.StartsWith(reason, Assert.Single(errors).Reason, StringComparison.Ordinal);
        }
    }

    /// <summary>The 1-based line of the first line containing <paramref name="marker"/>.</summary>
    private static int LineOf(string yaml, string marker) =>
        Array.FindIndex(yaml.Split('\n'), l => l.Contains(marker, StringComparison.Ordinal)) + 1;
}
