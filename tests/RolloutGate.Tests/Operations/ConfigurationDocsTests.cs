using System.Collections;
using System.Text.RegularExpressions;
using RolloutGate.Infrastructure;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Operations;

/// <summary>
/// README.md's configuration table and the settings the service binds name the same keys: a setting the table leaves
/// out cannot be found, and one only the table names is set to no effect.
/// </summary>
public sealed partial class ConfigurationDocsTests
{
    /// <summary>Keys read one by one rather than bound to an options class.</summary>
    private static readonly string[] ReadDirectly = ["ConnectionStrings__RolloutGate", "RolloutGate__Demo__Enabled"];

    [Fact]
    public void ConfigurationTable_NamesEveryBoundSetting_AndNoOther()
    {
        var documented = DocumentedKeys();
        var bound = BoundKeys(typeof(RolloutGateOptions), "RolloutGate")
            .Concat(BoundKeys(typeof(WatchOptions), "RolloutGate__Watch"))
            .Concat(ReadDirectly)
            .ToHashSet(StringComparer.Ordinal);

        Assert.Equal([], bound.Except(documented).Order(StringComparer.Ordinal));
        Assert.Equal([], documented.Except(bound).Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// The keys in the first column of the table under "## Configuration", as environment variables. A cell names a key
    /// in full (<c>RolloutGate__Slack__RetryBaseDelay</c>) and may go on with more of the same section (<c>__RetryMaxDelay</c>);
    /// a list is named by its first index (<c>__0</c>), a map by a placeholder (<c>__Headers__&lt;name&gt;</c>).
    /// </summary>
    private static HashSet<string> DocumentedKeys()
    {
        var readme = File.ReadAllText(TestPaths.RepositoryFile("README.md"));
        var start = readme.IndexOf("\n## Configuration\n", StringComparison.Ordinal);
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in readme[start..end].Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)))
        {
            var cell = line.Split('|')[1];
            string? section = null;
            foreach (Match name in Key().Matches(cell))
            {
                var key = name.Groups[1].Value;
                if (!key.StartsWith("__", StringComparison.Ordinal))
                {
                    section = key[..key.LastIndexOf("__", StringComparison.Ordinal)];
                    keys.Add(Normalised(key));
                }
                else
                {
                    keys.Add(Normalised(section + key));
                }
            }
        }

        return keys;
    }

    /// <summary>A list's index or a map's placeholder as <see cref="BoundKeys"/> writes them.</summary>
    private static string Normalised(string key) => Regex.Replace(key, "__<name>$|__[0-9]+$", m => m.Value == "__<name>" ? "__<name>" : "__0");

    private static IEnumerable<string> BoundKeys(Type options, string prefix)
    {
        foreach (var property in options.GetProperties().Where(p => p.CanWrite))
        {
            var key = $"{prefix}__{property.Name}";
            var type = property.PropertyType;
            if (type == typeof(string) || type.IsValueType)
            {
                yield return key;
            }
            else if (typeof(IDictionary).IsAssignableFrom(type))
            {
                yield return key + "__<name>";
            }
            else if (typeof(IEnumerable).IsAssignableFrom(type))
            {
                yield return key + "__0";
            }
            else
            {
                foreach (var nested in BoundKeys(type, key))
                {
                    yield return nested;
                }
            }
        }
    }

    [GeneratedRegex(@"`((?:RolloutGate|ConnectionStrings)?__[A-Za-z0-9_<>-]+)`")]
    private static partial Regex Key();
}
