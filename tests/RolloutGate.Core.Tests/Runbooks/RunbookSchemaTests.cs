using System.Text.Json;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// runbooks/schema.json is for editors; it must not drift from the parser. These tests hold it to the parser's two
/// strictest promises: unknown fields are errors everywhere, and the same field names exist on both sides.
/// </summary>
public sealed class RunbookSchemaTests
{
    private static readonly JsonElement Schema = JsonDocument.Parse(File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/schema.json"))).RootElement;

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
