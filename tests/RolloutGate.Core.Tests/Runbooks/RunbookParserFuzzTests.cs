using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>
/// The parser never throws and never hangs, whatever the file holds (runbooks/README.md: an invalid runbook is refused
/// with file, line and reason). Seeded, so a failure repeats: the shipped runbooks and every YAML example of the docs,
/// mutated line by line (deleted, duplicated, re-indented, values swapped for lists, maps, nothing, huge or odd numbers
/// and durations, tags, anchors and aliases, odd unicode), and whole-file hostile inputs (an alias bomb, deep nesting,
/// a 10 MB file, several documents, a BOM, CRLF). Each input loads, or is refused with errors that each name a line of
/// the file and a reason; none may throw or take more than a moment.
/// </summary>
public sealed partial class RunbookParserFuzzTests
{
    private const int Seed = 20261206;
    private const int RandomMutations = 3000;

    /// <summary>
    /// A hang guard, not a speed test (speed is for the benchmarks): the largest inputs here parse in under a second on a
    /// quiet machine, and 20,000 unknown keys took 5.2 s on this 2-core machine under a load of 25, where a 5 s bound
    /// failed the suite. An alias bomb's expansion or a loop runs far past a minute.
    /// </summary>
    private static readonly TimeSpan PerInput = TimeSpan.FromSeconds(60);

    private static readonly string[] HostileValues =
    [
        "", "~", "null", "[]", "{}", "[a, b]", "{a: 1}", "[[[]]]", "- x", "\"\"", "''",
        "0", "-0", "-1", "1.5", "-1.5", "1e308", "1e309", "-1e309", "2147483648", "9223372036854775808", "99999999999999999999999999",
        "0x1F", "0o17", "1_000", ".nan", ".NaN", ".inf", "-.inf", "NaN", "Infinity", "-Infinity", "∞",
        "99999999999999d", "10675199d", "10675200d", "9999999h", "0s", "0ms", "1ms", "-5m", "1.7976931348623157e308d", "1m1m", "5m1h",
        "100%", "1e308%", "-5%", "NaN%", "%", "99999999999999999999%",
        "!!binary aGVsbG8=", "!!int 3", "!!float .inf", "!!str 5", "!!map {}", "!!seq []", "!custom x", "!!timestamp 2001-12-14",
        "&anchor value", "*undefined", "*anchor", "<<: *anchor",
        "|\n  block", ">\n  folded", "|-", "\"\\u0000\"", "\"\\x01\"", "\"a\\tb\"", "'it''s'",
        "\u202Eevil\u202C", "\u200B", "日本語", "😀", "\uFFFD", "\u0085", "\u2028", "a\u0000b", "\t", "\"\u0007\"",
        "{{ environment }}", "{{ service }}", "{{", "}}", "{{ }}", "{{ nope }}",
        "Fri 16:00 - Mon 08:00", "Xyz 25:61 - Mon 08:00", "2026-12-24", "9999-12-31", "9999-12-31T23:59", "0001-01-01", "0001-01-01T00:00", "10000-01-01", "Europe/Berlin", "Not/AZone",
        "http://", "http://[::1", "ftp://x", "https://example.com:99999/", "http://a b",
        "a: b: c", "- - -", ": :", "? complex", "key: [unclosed", "{unclosed", "\"unclosed", "'unclosed", "`", "@", "%YAML 1.2",
    ];

    [Fact]
    public void Parse_EveryValueOfTheShippedRunbooksSwappedForAHostileOne_LoadsOrReportsLinesAndReasons()
    {
        // The shipped runbooks hold every section; the docs' examples are left to the random mutations, to keep this quick.
        var failures = new List<string>();
        foreach (var (name, text) in Seeds().Where(seed => seed.Name.StartsWith("runbooks/", StringComparison.Ordinal)))
        {
            var lines = Lines(text);
            for (var i = 0; i < lines.Length; i++)
            {
                if (KeyValue().Match(lines[i]) is not { Success: true } match)
                {
                    continue;
                }

                foreach (var value in HostileValues)
                {
                    var mutated = lines.ToArray();
                    mutated[i] = match.Groups["key"].Value + " " + value;
                    Check($"{name}: line {i + 1} '{match.Groups["key"].Value.Trim()}' set to '{value}'", string.Join('\n', mutated), failures);
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures.Take(30)));
    }

    [Fact]
    public void Parse_SeededRandomMutationsOfTheExamples_LoadOrReportLinesAndReasons()
    {
        var random = new Random(Seed);
        var seeds = Seeds();
        var failures = new List<string>();
        for (var n = 0; n < RandomMutations; n++)
        {
            var (name, text) = seeds[random.Next(seeds.Count)];
            var lines = Lines(text).ToList();
            var applied = new List<string>();
            for (var count = random.Next(1, 4); count > 0 && lines.Count > 0; count--)
            {
                applied.Add(Mutate(lines, random));
            }

            Check($"{name}, mutation {n} (seed {Seed}): {string.Join("; ", applied)}", string.Join('\n', lines), failures);
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures.Take(30)));
    }

    public static TheoryData<string, string> WholeFiles()
    {
        var example = File.ReadAllText(RunbookParserExampleTests.RepositoryPath("runbooks/checkout.yaml"));
        var laughs = new StringBuilder("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (var i = 1; i <= 30; i++)
        {
            laughs.Append($"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n");
        }

        var bomb = laughs.ToString();
        var data = new TheoryData<string, string>
        {
            { "alias bomb alone", bomb },
            { "alias bomb as the top level's unknown field", example + "\n" + bomb.Replace("a0:", "x0:", StringComparison.Ordinal) },
            { "alias bomb in spec's fields", example.Replace("spec:\n", "spec:\n" + Indent(bomb, "  ") + "\n", StringComparison.Ordinal) },
            { "alias bomb as environments", bomb + "\n" + example.Replace("environments: [production]", "environments: *a30", StringComparison.Ordinal).Replace("apiVersion", "x: 1\napiVersion", StringComparison.Ordinal) },
            { "alias bomb as a metric name", example.Replace("spec:\n", "spec:\n  owner2: &b [" + string.Join(", ", Enumerable.Repeat("x", 10)) + "]\n", StringComparison.Ordinal).Replace("- name: p95-latency", "- name: *b", StringComparison.Ordinal) },
            { "alias of the whole spec", example.Replace("spec:\n", "spec: &s\n", StringComparison.Ordinal) + "\nagain: *s\n" },
            { "recursive merge keys", "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: [*a, *b]}\n" + example },
            { "merge key in spec", example.Replace("spec:\n", "base: &base {service: checkout}\nspec:\n  <<: *base\n", StringComparison.Ordinal) },
            { "self-referencing anchor", "a: &a [*a]\n" },
            { "undefined alias", example.Replace("owner: U024BE7LH", "owner: *nowhere", StringComparison.Ordinal) },
            { "flow sequences nested 100,000 deep", new string('[', 100_000) + new string(']', 100_000) },
            { "flow mappings nested 100,000 deep", string.Concat(Enumerable.Repeat("{a: ", 100_000)) + "1" + new string('}', 100_000) },
            { "unclosed flow nesting 100,000 deep", new string('[', 100_000) },
            { "block sequences nested 5,000 deep", string.Concat(Enumerable.Range(0, 5_000).Select(i => new string(' ', i) + "-\n")) + new string(' ', 5_000) + "x\n" },
            { "block mappings nested 5,000 deep", string.Concat(Enumerable.Range(0, 5_000).Select(i => new string(' ', i) + "a:\n")) },
            { "spec nested 20,000 deep", example.Replace("spec:\n", "spec:\n  watch: " + new string('[', 20_000) + new string(']', 20_000) + "\n", StringComparison.Ordinal) },
            { "10 MB file", example + "\n# " + new string('x', 10 * 1024 * 1024) + "\n" },
            { "just under 1 MiB of comments", example + string.Concat(Enumerable.Repeat("# " + new string('y', 1000) + "\n", 1000)) },
            { "a 900 KB single line value", example.Replace("owner: U024BE7LH", "owner: " + new string('U', 900_000), StringComparison.Ordinal) },
            { "20,000 unknown keys", example + string.Concat(Enumerable.Range(0, 20_000).Select(i => $"k{i}: v\n")) },
            { "two documents", example + "\n---\n" + example },
            { "an empty second document", example + "\n---\n" },
            { "document end and more", example + "\n...\n---\nkind: Runbook\n" },
            { "only a document marker", "---\n" },
            { "only a document end", "...\n" },
            { "BOM", "\uFEFF" + example },
            { "two BOMs", "\uFEFF\uFEFF" + example },
            { "BOM inside", example.Replace("spec:", "\uFEFFspec:", StringComparison.Ordinal) },
            { "CRLF", example.ReplaceLineEndings("\r\n") },
            { "CR only", example.ReplaceLineEndings("\r") },
            { "unicode line separators", example.ReplaceLineEndings("\u2028") },
            { "NEL line ends", example.ReplaceLineEndings("\u0085") },
            { "tabs for indentation", example.Replace("  ", "\t", StringComparison.Ordinal) },
            { "a NUL byte", example.Replace("spec:", "sp\0ec:", StringComparison.Ordinal) },
            { "control characters", example.Replace("checkout", "check\u0001\u001Bout", StringComparison.Ordinal) },
            { "lone surrogates", example.Replace("checkout", "check\uD800out\uDC00", StringComparison.Ordinal) },
            { "directives", "%YAML 1.1\n%TAG ! tag:example.com,2000:\n---\n" + example },
            { "unknown directive version", "%YAML 9.9\n---\n" + example },
            { "binary tag at the top", "!!binary aGVsbG8=" },
            { "a tagged spec", example.Replace("spec:\n", "spec: !!map\n", StringComparison.Ordinal) },
            { "a complex key", "? [a, b]\n: c\n" + example },
            { "a mapping as a key", example.Replace("kind: Runbook", "{a: 1}: Runbook", StringComparison.Ordinal) },
            { "an empty file", "" },
            { "only whitespace", " \n\t\n  \r\n" },
            { "only a comment", "# nothing\n" },
            { "a scalar", "hello" },
            { "a list", "- a\n- b\n" },
            { "null", "~" },
        };
        return data;
    }

    [Theory]
    [MemberData(nameof(WholeFiles))]
    public void Parse_HostileWholeFile_LoadsOrReportsLinesAndReasons(string name, string text)
    {
        var failures = new List<string>();

        Check(name, text, failures);

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    /// <summary>Parses one input; records why it fails the promise, if it does.</summary>
    private static void Check(string name, string text, List<string> failures)
    {
        var clock = Stopwatch.StartNew();
        RunbookParseResult result;
        try
        {
            result = RunbookParser.Parse(text, "fuzz.yaml");
        }
        catch (Exception ex)
        {
            failures.Add($"{name}: threw {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
            return;
        }

        if (clock.Elapsed > PerInput)
        {
            failures.Add($"{name}: took {clock.Elapsed.TotalSeconds:0.0} s");
        }

        // A line past the last one is allowed: a file without a final newline can end on one.
        var lastLine = text.Count(c => c == '\n') + 2;
        if (!result.IsValid && result.Errors.Count == 0)
        {
            failures.Add($"{name}: refused without an error");
        }

        foreach (var error in result.Errors.Concat(result.Warnings))
        {
            if (error.Line < 1 || error.Line > lastLine || string.IsNullOrWhiteSpace(error.Reason) || error.File != "fuzz.yaml")
            {
                failures.Add($"{name}: error without a line of the file or a reason: {error}");
            }
        }
    }

    /// <summary>One random change to <paramref name="lines"/>; says what it did.</summary>
    private static string Mutate(List<string> lines, Random random)
    {
        var i = random.Next(lines.Count);
        var line = lines[i];
        switch (random.Next(12))
        {
            case 0:
                lines.RemoveAt(i);
                return $"deleted line {i + 1}";
            case 1:
                lines.Insert(i, line);
                return $"duplicated line {i + 1}";
            case 2:
                var shift = random.Next(-3, 4);
                lines[i] = shift >= 0 ? new string(' ', shift) + line : line[Math.Min(-shift, line.Length - line.TrimStart().Length)..];
                return $"indented line {i + 1} by {shift}";
            case 3:
                lines[i] = "\t" + line.TrimStart();
                return $"tab-indented line {i + 1}";
            case 4 when KeyValue().Match(line) is { Success: true } match:
                var value = HostileValues[random.Next(HostileValues.Length)];
                lines[i] = match.Groups["key"].Value + " " + value;
                return $"line {i + 1} value '{value}'";
            case 5 when KeyValue().Match(line) is { Success: true } match:
                // The value moves under an anchor here and is repeated by alias at another line's value.
                var j = random.Next(lines.Count);
                lines[i] = match.Groups["key"].Value + " &fz " + match.Groups["value"].Value;
                if (KeyValue().Match(lines[j]) is { Success: true } other && j > i)
                {
                    lines[j] = other.Groups["key"].Value + " *fz";
                }

                return $"anchored line {i + 1}, aliased at {j + 1}";
            case 6:
                lines.Insert(i, new string(' ', line.Length - line.TrimStart().Length) + "<<: {service: x}");
                return $"merge key before line {i + 1}";
            case 7 when line.Length > 0:
                var at = random.Next(line.Length);
                var c = "-:[]{}\"'&*!%@`|>#\t\r?,\\\u00A0\uFEFF"[random.Next(23)];
                lines[i] = line[..at] + c + line[(at + 1)..];
                return $"line {i + 1} column {at + 1} set to U+{(int)c:X4}";
            case 8:
                lines.Insert(i, random.Next(2) == 0 ? "---" : "...");
                return $"document marker before line {i + 1}";
            case 9:
                // A list item becomes a mapping, or a mapping value a list.
                lines[i] = line.Contains("- ", StringComparison.Ordinal) ? line.Replace("- ", "? ", StringComparison.Ordinal) : Regex.Replace(line, @"^(\s*)(\S)", "$1- $2");
                return $"list marker toggled at line {i + 1}";
            case 10:
                lines[i] = line + new string('9', random.Next(1, 400));
                return $"digits appended at line {i + 1}";
            default:
                var k = random.Next(lines.Count);
                (lines[i], lines[k]) = (lines[k], lines[i]);
                return $"swapped lines {i + 1} and {k + 1}";
        }
    }

    /// <summary>The shipped runbooks and every fenced YAML block of the docs that shows a runbook or a part of one.</summary>
    private static List<(string Name, string Text)> Seeds()
    {
        var seeds = Directory.GetFiles(RunbookParserExampleTests.RepositoryPath("runbooks"), "*.yaml")
            .Order(StringComparer.Ordinal)
            .Select(path => ("runbooks/" + Path.GetFileName(path), File.ReadAllText(path)))
            .ToList();
        foreach (var doc in new[] { "README.md", "runbooks/README.md", "docs/coming-from-peers.md" })
        {
            var text = File.ReadAllText(RunbookParserExampleTests.RepositoryPath(doc)).ReplaceLineEndings("\n");
            seeds.AddRange(YamlBlock().Matches(text).Select((m, n) => ($"{doc} block {n + 1}", m.Groups["body"].Value)));
        }

        Assert.True(seeds.Count >= 10, $"only {seeds.Count} examples found to mutate");
        return seeds;
    }

    private static string[] Lines(string text) => text.ReplaceLineEndings("\n").Split('\n');

    private static string Indent(string text, string indent) => string.Join('\n', Lines(text).Select(l => indent + l));

    [GeneratedRegex(@"^(?<key>\s*(- )?[A-Za-z][A-Za-z0-9]*:)\s+(?<value>\S.*)$")]
    private static partial Regex KeyValue();

    [GeneratedRegex(@"^```(ya?ml)?\n(?<body>.*?)^```$", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex YamlBlock();
}
