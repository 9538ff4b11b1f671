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
    /// What the schema finds wrong with a runbook's YAML, each as "instance location: keyword: error"; nothing when it is
    /// valid (the list then still holds the errors of the oneOf and anyOf branches that did not apply).
    /// </summary>
    internal static List<string> SchemaErrors(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var instance = JsonSerializer.SerializeToElement(ToJson(stream.Documents.Single().RootNode));
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
