using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using RolloutGate.Core.Runbooks;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// runbooks/schema.json is for editors; it must not drift from the parser. These tests hold it to the parser's two
/// strictest promises: unknown fields are errors everywhere, and the same field names exist on both sides; and it
/// accepts every runbook the project ships (runbooks/, whose checkout.yaml is CONTRACT section 3's example, and the one
/// in deploy/kubernetes/rolloutgate.yaml), which an editor would otherwise underline although the parser loads them.
/// </summary>
public sealed class RunbookSchemaTests
{
    private static readonly JsonElement Schema = JsonDocument.Parse(File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/schema.json"))).RootElement;

    /// <summary>Deeper than the parser's 100 levels, so that a runbook nested too deep reaches the schema.</summary>
    private static readonly JsonSerializerOptions DeepJson = new() { MaxDepth = 256 };

    /// <summary>Built once: the schema's $id registers it globally, and a second build of the same $id is refused.</summary>
    private static readonly JsonSchema Evaluator = JsonSchema.FromText(Schema.GetRawText());

    [Fact]
    public void Schema_IsDraft2020_12()
    {
        Assert.Equal("https://json-schema.org/draft/2020-12/schema", Schema.GetProperty("$schema").GetString());
    }

    [Fact]
    public void Schema_EveryObject_RefusesAdditionalProperties()
    {
        var objects = Walk(Schema).Where(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "object").ToList();

        Assert.NotEmpty(objects);
        Assert.All(objects, o => Assert.False(o.GetProperty("additionalProperties").GetBoolean()));
    }

    [Fact]
    public void Schema_FieldNames_AreThoseTheParserKnows()
    {
        // A field only the schema knows would be offered by editors and then refused as unknown by the parser;
        // a field only the parser knows would be flagged by editors although it is valid.
        var schemaFields = Walk(Schema)
            .Where(e => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("properties", out _))
            .SelectMany(e => e.GetProperty("properties").EnumerateObject().Select(p => p.Name))
            .ToHashSet(StringComparer.Ordinal);
        Assert.Equal(RunbookParser.KnownFieldNames.Order(StringComparer.Ordinal), schemaFields.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Schema_AcceptsEveryShippedRunbook()
    {
        var runbooks = Directory.GetFiles(RunbookParserExampleTests.RepositoryPath("runbooks"))
            .Where(path => path.EndsWith(".yaml", StringComparison.Ordinal) || path.EndsWith(".yml", StringComparison.Ordinal))
            .Select(path => (Name: "runbooks/" + Path.GetFileName(path), Text: File.ReadAllText(path)))
            .Concat(ManifestRunbooks())
            .ToList();

        Assert.Contains(runbooks, r => r.Name == "runbooks/checkout.yaml");
        Assert.Contains(runbooks, r => r.Name.StartsWith("deploy/", StringComparison.Ordinal));
        var errors = runbooks.SelectMany(runbook => SchemaErrors(runbook.Text).Select(e => $"{runbook.Name}: {e}")).ToList();
        Assert.True(errors.Count == 0, string.Join(Environment.NewLine, errors));
    }

    [Fact]
    public void Schema_RefusesARunbookWithAMisspelledField()
    {
        // So that the test above cannot pass by accepting everything.
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml")).Replace("maxIncrease: 20%", "maxIncrase: 20%", StringComparison.Ordinal);

        Assert.Contains(SchemaErrors(text), e => e.StartsWith("/spec/watch/metrics/0", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("query: sum(rate(orders_total[5m]))\n        maxIncrease: 30%\n        worse: lower", true)]
    [InlineData("query: sum(rate(orders_total[5m]))\n        max: 500\n        worse: higher", true)]
    [InlineData("query: sum(rate(orders_total[5m]))\n        max: 500\n        worse: lower", false)]
    [InlineData("query: sum(rate(orders_total[5m]))\n        maxIncrease: 30%\n        worse: decrease", false)]
    [InlineData("preset: request-rate\n        maxIncrease: 30%\n        worse: lower", false)]
    [InlineData("preset: p95-latency\n        max: 800ms\n        worse: higher", false)]
    [InlineData("preset: request-rate\n        min: 10", true)]
    [InlineData("query: sum(rate(orders_total[5m])) * 60\n        min: 50\n        max: 2000", true)]
    [InlineData("preset: p95-latency\n        min: 5ms", true)]
    [InlineData("preset: request-rate\n        min: -1", false)]
    public void Schema_WorseAndMin_AcceptWhatTheParserAccepts(string metric, bool valid)
    {
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml")).Replace(
            "        preset: p95-latency      # istio / linkerd golden metric\n        maxIncrease: 20%\n        max: 800ms\n",
            $"        {metric}\n",
            StringComparison.Ordinal);

        Assert.Contains(metric, text, StringComparison.Ordinal);
        Assert.Equal(valid, RunbookParser.Parse(text, "runbooks/checkout.yaml").IsValid);
        Assert.Equal(valid, SchemaErrors(text).Count == 0);
    }

    /// <summary>
    /// A freeze needs windows or dates, refused by both when both are left out; empty lists are accepted by both (the
    /// parser warns of them, a freeze that never fails), so that a runbook that loaded before still does.
    /// </summary>
    [Theory]
    [InlineData("windows: [\"Sat 00:00 - Sun 00:00\"]", true)]
    [InlineData("windows: []", true)]
    [InlineData("dates: []", true)]
    [InlineData("windows: []\n          dates: []", true)]
    [InlineData("windows: []\n          dates: [{from: 2026-12-24, to: 2026-12-26}]", true)]
    [InlineData("", false)]
    public void Schema_FreezeLists_AcceptWhatTheParserAccepts(string lists, bool valid)
    {
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml")).Replace(
            "          windows: [\"Fri 16:00 - Mon 08:00\"]\n", $"          {lists}\n", StringComparison.Ordinal);

        Assert.Contains(lists, text, StringComparison.Ordinal);
        Assert.Equal(valid, RunbookParser.Parse(text, "runbooks/checkout.yaml").IsValid);
        Assert.Equal(valid, SchemaErrors(text).Count == 0);
    }

    [Theory]
    [InlineData("shop", true)]
    [InlineData("shop-{{ environment }}", true)]
    [InlineData("'{{environment}}-shop'", true)]
    [InlineData("Shop", false)]
    [InlineData("shop-{{ namespace }}", false)]
    [InlineData("shop_{{ environment }}", false)]
    public void Schema_MeshNamespace_AcceptsWhatTheParserAccepts(string @namespace, bool valid)
    {
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml")).Replace(
            "    namespace: shop\n", $"    namespace: {@namespace}\n", StringComparison.Ordinal);

        Assert.Contains($"namespace: {@namespace}", text, StringComparison.Ordinal);
        Assert.Equal(valid, RunbookParser.Parse(text, "runbooks/checkout.yaml").IsValid);
        Assert.Equal(valid, SchemaErrors(text).Count == 0);
    }

    /// <summary>
    /// The bounds of the durations (watch durations and approvalTimeout at most 365d, watch.interval at least 10s, pre-deploy
    /// timeouts at most 24h, none zero but warmup), as far as a pattern can tell them: the schema refuses a duration whose
    /// first unit alone passes the bound, and one of seconds and milliseconds under 10s. What it cannot tell (a sum that
    /// passes the bound in smaller units, 364d48h; 0.1m, six seconds) it accepts and the parser refuses, so an editor
    /// underlines no runbook the service loads. Before, the schema accepted every duration the grammar allows.
    /// </summary>
    [Theory]
    [InlineData("watch.duration", "365d", true, false)]
    [InlineData("watch.duration", "366d", false, true)]
    [InlineData("watch.duration", "8761h", false, true)]
    [InlineData("watch.duration", "0s", false, true)]
    [InlineData("watch.duration", "364d48h", false, false)]
    [InlineData("watch.baseline", "400d", false, true)]
    [InlineData("watch.warmup", "0s", true, false)]
    [InlineData("watch.warmup", "366d", false, true)]
    [InlineData("watch.stopRules.maxBlind", "1000d", false, true)]
    [InlineData("rollback.approvalTimeout", "365d1s", false, true)]
    [InlineData("rollback.approvalTimeout", "525601m", false, true)]
    [InlineData("watch.interval", "10s", true, false)]
    [InlineData("watch.interval", "9s999ms", false, true)]
    [InlineData("watch.interval", "500ms", false, true)]
    [InlineData("watch.interval", "0.1m", false, false)]
    [InlineData("preDeploy.timeout", "24h", true, false)]
    [InlineData("preDeploy.timeout", "25h", false, true)]
    [InlineData("preDeploy.timeout", "2d", false, true)]
    [InlineData("preDeploy.timeout", "23h120m", false, false)]
    [InlineData("http.timeout", "24h1s", false, true)]
    [InlineData("http.timeout", "0ms", false, true)]
    public void Schema_DurationBounds_RefuseWhatAPatternCanTell(string field, string value, bool parserAccepts, bool schemaRefuses)
    {
        var text = WithDuration(field, value);

        Assert.Equal(parserAccepts, RunbookParser.Parse(text, "runbooks/checkout.yaml").IsValid);
        var errors = SchemaErrors(text);
        Assert.True(schemaRefuses == errors.Count > 0, $"{field}: {value}: {string.Join("; ", errors)}");
    }

    /// <summary>
    /// Over many durations, of every unit and of sizes about the bounds: whatever the schema refuses, the parser refuses
    /// too (an editor never underlines a duration the service loads), and the schema refuses most of what the parser does.
    /// </summary>
    [Theory]
    [InlineData("watch.duration")]
    [InlineData("watch.interval")]
    [InlineData("preDeploy.timeout")]
    public void Schema_DurationBounds_NeverRefuseWhatTheParserAccepts(string field)
    {
        var random = new Random(20261207);
        string[] units = ["d", "h", "m", "s", "ms"];
        long[] sizes = [0, 1, 9, 10, 23, 24, 25, 364, 365, 366, 1440, 1441, 8760, 8761, 86400, 86401, 525600, 525601, 31536000, 31536001, 86400000, 86400001];
        var (both, parserOnly) = (0, 0);
        for (var i = 0; i < 120; i++)
        {
            var value = string.Concat(units.Where(_ => random.Next(3) == 0).DefaultIfEmpty(units[random.Next(units.Length)]).Select(unit =>
                (random.Next(2) == 0 ? sizes[random.Next(sizes.Length)] : random.NextInt64(0, 100_000)).ToString(CultureInfo.InvariantCulture)
                + (random.Next(4) == 0 ? ".5" : "") + unit));
            var text = WithDuration(field, value);
            var parserRefuses = !RunbookParser.Parse(text, "runbooks/checkout.yaml").IsValid;
            var schemaRefuses = SchemaErrors(text).Count > 0;
            Assert.False(schemaRefuses && !parserRefuses, $"{field}: {value} is refused by the schema only");
            both += schemaRefuses ? 1 : 0;
            parserOnly += parserRefuses && !schemaRefuses ? 1 : 0;
        }

        Assert.True(both > parserOnly, $"{field}: the schema refused {both}, the parser {parserOnly} more");
    }

    /// <summary>
    /// Lists and mappings nested over 100 levels deep are a YAML syntax error to the parser. The schema has no keyword for
    /// depth, but every field has a fixed shape with plain values at its leaves, so it refuses them too: as the wrong type.
    /// </summary>
    [Fact]
    public void Schema_NestingTooDeep_IsRefusedAsTheWrongType()
    {
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml")).Replace(
            "  owner: U024BE7LH ", $"  owner: {new string('[', 101)}U024BE7LH{new string(']', 101)} ", StringComparison.Ordinal);

        Assert.Contains(RunbookParser.Parse(text, "runbooks/checkout.yaml").Errors, e => e.Reason.Contains("nested more than 100 levels", StringComparison.Ordinal));
        Assert.Contains(SchemaErrors(text), e => e.StartsWith("/spec/owner: type:", StringComparison.Ordinal));
    }

    /// <summary>runbooks/checkout.yaml with <paramref name="field"/> set to <paramref name="value"/>.</summary>
    private static string WithDuration(string field, string value)
    {
        var (find, replace) = field switch
        {
            "watch.duration" => ("    duration: 24h\n", $"    duration: {value}\n"),
            "watch.interval" => ("    interval: 1m\n", $"    interval: {value}\n"),
            "watch.baseline" => ("    baseline: 24h ", $"    baseline: {value} "),
            "watch.warmup" => ("    metrics:\n", $"    warmup: {value}\n    metrics:\n"),
            "watch.stopRules.maxBlind" => ("    metrics:\n", $"    stopRules:\n      maxBlind: {value}\n    metrics:\n"),
            "rollback.approvalTimeout" => ("    approvalTimeout: 15m\n", $"    approvalTimeout: {value}\n"),
            "preDeploy.timeout" => ("    timeout: 30s\n", $"    timeout: {value}\n"),
            "http.timeout" => ("          expectStatus: 200\n", $"          expectStatus: 200\n          timeout: {value}\n"),
            _ => throw new ArgumentOutOfRangeException(nameof(field), field, "no such duration field in the test"),
        };
        var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml"));
        Assert.Contains(find, text, StringComparison.Ordinal);
        return text.Replace(find, replace, StringComparison.Ordinal);
    }

    /// <summary>
    /// What the schema finds wrong with a runbook's YAML, each as "instance location: keyword: error"; nothing when it is
    /// valid (the list then still holds the errors of the oneOf and anyOf branches that did not apply).
    /// </summary>
    internal static List<string> SchemaErrors(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var instance = JsonSerializer.SerializeToElement(ToJson(stream.Documents.Single().RootNode), DeepJson);
        var result = Evaluator.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });
        return result.IsValid ? [] : [.. (result.Details ?? [result]).Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Key}: {e.Value}"))];
    }

    /// <summary>The runbooks in the ConfigMap of deploy/kubernetes/rolloutgate.yaml, one per key.</summary>
    private static IEnumerable<(string Name, string Text)> ManifestRunbooks()
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(RunbookParserExampleTests.RepositoryPath("deploy/kubernetes/rolloutgate.yaml"))));
        return stream.Documents
            .Select(d => (YamlMappingNode)d.RootNode)
            .Where(d => d.Children.TryGetValue(new YamlScalarNode("kind"), out var kind) && kind is YamlScalarNode { Value: "ConfigMap" })
            .SelectMany(d => ((YamlMappingNode)d.Children[new YamlScalarNode("data")]).Children)
            .Select(file => ("deploy/kubernetes/rolloutgate.yaml: " + ((YamlScalarNode)file.Key).Value, ((YamlScalarNode)file.Value).Value!));
    }

    /// <summary>
    /// YAML as an editor's YAML 1.2 language server reads it for the schema: a plain scalar is null, a boolean, an integer
    /// or a float when the core schema says so, and text otherwise (a date such as 2026-12-24 included); a quoted one is text.
    /// </summary>
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode mapping => new JsonObject(mapping.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ToJson(c.Value)))),
        YamlSequenceNode sequence => new JsonArray([.. sequence.Children.Select(ToJson)]),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: var plain } => plain switch
        {
            null or "" or "~" or "null" or "Null" or "NULL" => null,
            "true" or "True" or "TRUE" => JsonValue.Create(true),
            "false" or "False" or "FALSE" => JsonValue.Create(false),
            _ when Regex.IsMatch(plain, "^[-+]?[0-9]+$") => JsonValue.Create(long.Parse(plain, CultureInfo.InvariantCulture)),
            _ when Regex.IsMatch(plain, @"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$") => JsonValue.Create(double.Parse(plain, CultureInfo.InvariantCulture)),
            _ => JsonValue.Create(plain),
        },
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => throw new InvalidOperationException($"unexpected YAML node {node.NodeType}"),
    };

    private static IEnumerable<JsonElement> Walk(JsonElement element)
    {
        yield return element;
        var children = element.ValueKind switch
        {
            JsonValueKind.Object => element.EnumerateObject().Select(p => p.Value),
            JsonValueKind.Array => element.EnumerateArray(),
            _ => [],
        };
        foreach (var child in children.SelectMany(Walk))
        {
            yield return child;
        }
    }
}
