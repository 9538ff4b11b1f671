using YamlDotNet.RepresentationModel;

namespace RolloutGate.Core.Runbooks;

/// <summary>The errors of one file being parsed; every reader reports here instead of throwing, so all errors surface together.</summary>
internal sealed class RunbookErrorSink(string file)
{
    private readonly List<RunbookError> errors = [];
    private readonly List<RunbookError> warnings = [];

    public IReadOnlyList<RunbookError> Errors => errors;

    public IReadOnlyList<RunbookError> Warnings => warnings;

    public void Add(int line, string reason) => errors.Add(new RunbookError(file, Math.Max(line, 1), reason));

    public void Warn(int line, string reason) => warnings.Add(new RunbookError(file, Math.Max(line, 1), reason));

    public void Add(YamlNode node, string reason) => Add((int)node.Start.Line, reason);

    /// <summary>Opens a node that must be a mapping with a known set of fields; reports its unknown fields once, here.</summary>
    public YamlSection? Section(YamlNode node, string path, IReadOnlyList<string> fields)
    {
        if (node is YamlMappingNode mapping)
        {
            return new YamlSection(this, mapping, path, fields);
        }

        Add(node, $"{Describe(path)} must be a mapping of fields, got {YamlSection.KindOf(node)}");
        return null;
    }

    private static string Describe(string path) => path.Length == 0 ? "the runbook" : path;
}

/// <summary>
/// One YAML mapping read against the fields it may hold. Readers return null when a value is absent or invalid and
/// report why with the line of the offending node; the caller only decides on defaults.
/// </summary>
internal sealed class YamlSection
{
    private readonly RunbookErrorSink errors;
    private readonly Dictionary<string, (YamlNode Key, YamlNode Value)> values = new(StringComparer.Ordinal);

    public YamlSection(RunbookErrorSink errors, YamlMappingNode node, string path, IReadOnlyList<string> fields)
    {
        this.errors = errors;
        Node = node;
        Path = path;
        foreach (var (key, value) in node.Children)
        {
            if (key is not YamlScalarNode { Value: { } name })
            {
                errors.Add(key, $"field names must be plain text {Where}");
                continue;
            }

            if (!fields.Contains(name, StringComparer.Ordinal))
            {
                errors.Add(key, $"unknown field '{name}' {Where} (expected one of: {string.Join(", ", fields)})");
                continue;
            }

            values[name] = (key, value);
        }
    }

    public YamlMappingNode Node { get; }

    /// <summary>Where this mapping sits, as a reader would write it: "watch.metrics[0]"; empty for the top level.</summary>
    public string Path { get; }

    public int Line => (int)Node.Start.Line;

    private string Where => Path.Length == 0 ? "at the top level" : $"in {Path}";

    public string PathOf(string field) => Path.Length == 0 || Path == "spec" ? field : $"{Path}.{field}";

    /// <summary>The value of a field; a YAML null ("field:" or "field: ~") counts as absent.</summary>
    public YamlNode? Find(string field) =>
        values.TryGetValue(field, out var entry) && !IsNull(entry.Value) ? entry.Value : null;

    public bool Has(string field) => Find(field) is not null;

    /// <summary>The line to blame for a field: its value when present, else the key, else this mapping.</summary>
    public int LineOf(string field) =>
        values.TryGetValue(field, out var entry) ? (int)entry.Key.Start.Line : Line;

    public void Error(string field, string reason) => errors.Add(LineOf(field), reason);

    /// <summary>Said of a runbook that is still accepted (see <see cref="RunbookParseResult.Warnings"/>).</summary>
    public void Warning(string field, string reason) => errors.Warn(LineOf(field), reason);

    public void Missing(string field) => errors.Add(Line, $"missing required field '{field}' {Where}");

    public string? Text(string field, bool required = false)
    {
        var node = Find(field);
        if (node is null)
        {
            if (required)
            {
                Missing(field);
            }

            return null;
        }

        if (node is not YamlScalarNode { Value: { } text })
        {
            errors.Add(node, $"{PathOf(field)} must be text, got {KindOf(node)}");
            return null;
        }

        if (required && string.IsNullOrWhiteSpace(text))
        {
            errors.Add(node, $"{PathOf(field)} must not be empty");
            return null;
        }

        return text;
    }

    /// <summary>A text field limited to a few words, such as mesh.provider.</summary>
    public string? Choice(string field, IReadOnlyList<string> allowed, bool required = false)
    {
        var text = Text(field, required);
        if (text is null || allowed.Contains(text, StringComparer.Ordinal))
        {
            return text;
        }

        errors.Add(Find(field)!, $"{PathOf(field)} must be one of: {string.Join(", ", allowed)}; got '{text}'");
        return null;
    }

    public delegate bool TryParse<T>(string text, out T value);

    /// <summary>A scalar parsed by <paramref name="parse"/>; a refusal is reported as "must be {expectation}".</summary>
    public T? Value<T>(string field, TryParse<T> parse, string expectation, bool required = false)
        where T : struct
    {
        var text = Text(field, required);
        if (text is null)
        {
            return null;
        }

        if (parse(text.Trim(), out var value))
        {
            return value;
        }

        errors.Add(Find(field)!, $"{PathOf(field)} must be {expectation}, got '{text}'");
        return null;
    }

    /// <summary>
    /// A duration longer than zero (or zero too, when <paramref name="allowZero"/>) and at most <paramref name="longest"/>;
    /// a longer one is reported with <paramref name="longestReason"/>, and is null as an invalid value is.
    /// </summary>
    public TimeSpan? Duration(
        string field, TimeSpan longest, string longestReason, bool allowZero = false, TimeSpan shortest = default, string? shortestReason = null)
    {
        var value = Value<TimeSpan>(field, allowZero ? RunbookValues.TryParseDuration : RunbookValues.TryParsePositiveDuration, RunbookValues.DurationExpectation);
        if (value > longest)
        {
            errors.Add(Find(field)!, $"{PathOf(field)} '{Text(field)}' is too long: {longestReason}");
            return null;
        }

        if (value < shortest)
        {
            errors.Add(Find(field)!, $"{PathOf(field)} '{Text(field)}' is too short: {shortestReason}");
            return null;
        }

        return value;
    }

    public YamlSection? Section(string field, IReadOnlyList<string> fields, bool required = false)
    {
        var node = Find(field);
        if (node is null)
        {
            if (required)
            {
                Missing(field);
            }

            return null;
        }

        return errors.Section(node, PathOf(field), fields);
    }

    /// <summary>
    /// The items of a list field with their paths ("checks[2]"); null when absent or not a list. An empty list is an
    /// error when <paramref name="whenEmpty"/> says what it would mean and what to write instead; so is a required one
    /// written with no value ("metrics:", YAML null), at its key: it is the same slip, an empty list, written the other way.
    /// </summary>
    public IReadOnlyList<(YamlNode Node, string Path)>? Items(string field, bool required = false, EmptyList? whenEmpty = null)
    {
        var node = Find(field);
        if (node is null)
        {
            if (required && whenEmpty is not null && values.ContainsKey(field))
            {
                Error(field, whenEmpty.Reason(PathOf(field), "it has no value"));
            }
            else if (required)
            {
                Missing(field);
            }

            return null;
        }

        if (node is not YamlSequenceNode sequence)
        {
            errors.Add(node, $"{PathOf(field)} must be a list, got {KindOf(node)}");
            return null;
        }

        if (whenEmpty is not null && sequence.Children.Count == 0)
        {
            errors.Add(node, whenEmpty.Reason(PathOf(field), "it is an empty list"));
        }

        return sequence.Children.Select((item, index) => (item, $"{PathOf(field)}[{index}]")).ToList();
    }

    /// <summary>A list of non-empty text items; duplicates are reported, since each item names one thing.</summary>
    public IReadOnlyList<string>? TextList(string field, bool required = false, EmptyList? whenEmpty = null)
    {
        var items = Items(field, required, whenEmpty);
        if (items is null)
        {
            return null;
        }

        var texts = new List<string>();
        foreach (var (node, path) in items)
        {
            if (node is not YamlScalarNode { Value: { } text } || string.IsNullOrWhiteSpace(text))
            {
                errors.Add(node, $"{path} must be non-empty text, got {KindOf(node)}");
            }
            else if (text != text.Trim())
            {
                // Compared as written (an environment with the webhook's, an approver with Slack's user id): ' production'
                // governed no webhook that sends "production", with no word of why.
                errors.Add(node, $"{path} '{text}' has blanks at its start or end, which no name it is compared with would have");
            }
            else if (texts.Contains(text, StringComparer.Ordinal))
            {
                errors.Add(node, $"{path} repeats '{text}'");
            }
            else
            {
                texts.Add(text);
            }
        }

        return texts;
    }

    /// <summary>Which one of several mutually exclusive fields is given; reports none or several.</summary>
    public string? ExactlyOneOf(IReadOnlyList<string> fields, string what)
    {
        var present = fields.Where(Has).ToList();
        if (present.Count == 1)
        {
            return present[0];
        }

        if (present.Count == 0)
        {
            errors.Add(Line, $"{Path} needs exactly one {what}: {string.Join(", ", fields)}");
        }
        else
        {
            errors.Add(LineOf(present[1]), $"{Path} has more than one {what} ({string.Join(", ", present)}); give exactly one");
        }

        return null;
    }

    internal static string KindOf(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        YamlScalarNode scalar when IsNull(scalar) => "nothing",
        YamlScalarNode scalar => $"'{scalar.Value}'",
        _ => "an alias",
    };

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };
}

/// <summary>
/// Why a list may not be empty and what to write in it. "X must not be empty" said only what was wrong; the person
/// reading it needs to know what the list is for (an empty one is no safe default: no environment governs nothing, no
/// matcher matches every alert) and an example to copy, in the runbook's own syntax.
/// </summary>
/// <param name="Item">One entry of the list, as a reader names it: "environment".</param>
/// <param name="Why">What the runbook would do with an empty list.</param>
/// <param name="Example">What to write, in the runbook's own syntax, with a word on it where the line alone does not say: "environments: [production] (the environment names the CD webhooks send)".</param>
internal sealed record EmptyList(string Item, string Why, string Example)
{
    /// <summary>The error for the list at <paramref name="path"/>; <paramref name="written"/> says how it came to hold nothing: "it is an empty list".</summary>
    public string Reason(string path, string written) => $"{path} needs at least one {Item} ({written}); {Why}. Give one, for example {Example}";
}
