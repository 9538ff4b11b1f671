using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using RolloutGate.Core.Watch;

namespace RolloutGate.Core.Runbooks;

/// <summary>
/// Placeholders in a runbook's PromQL (<c>watch.metrics[].query</c>, <c>preDeploy.checks[].prometheus.query</c>):
/// <c>{{ service }}</c>, <c>{{ environment }}</c>, <c>{{ namespace }}</c>, <c>{{ workload }}</c>, and in watch metrics
/// <c>{{ interval }}</c> and <c>{{ window }}</c>, so that one runbook governing several environments can judge each deploy
/// on its own environment's series (runbooks/README.md, "Placeholders"); the four text ones also in an alertmanager check's
/// matcher values and an http check's URL. Checked when the runbook is loaded, rendered where the query is sent; a query
/// without <c>{{</c> is sent exactly as written.
/// </summary>
/// <remarks>
/// A text value (the environment comes from the webhook, the others from the runbook) may stand only inside a quoted
/// PromQL string, where it is escaped for that string (and, after <c>=~</c> or <c>!~</c>, matched literally), so no value
/// can end the string and add PromQL of its own. The two durations are written by RolloutGate (<c>5m</c>) and may
/// stand anywhere.
/// </remarks>
public static partial class QueryPlaceholders
{
    public const string Service = "service";
    public const string Environment = "environment";
    public const string Namespace = "namespace";
    public const string Workload = "workload";
    public const string Interval = "interval";
    public const string Window = "window";

    /// <summary>The placeholders a pre-deploy check's query may hold: nothing there has an interval.</summary>
    public static readonly IReadOnlyList<string> InChecks = [Service, Environment, Namespace, Workload];

    /// <summary>The placeholders a watch metric's query may hold.</summary>
    public static readonly IReadOnlyList<string> InWatch = [Service, Environment, Namespace, Workload, Interval, Window];

    private static readonly string[] Durations = [Interval, Window];

    /// <summary>What users of other tools write, and what stands for it here (or why nothing does).</summary>
    private static readonly Dictionary<string, string> PeerHints = new(StringComparer.Ordinal)
    {
        ["target"] = "Flagger's {{ target }} is {{ workload }} here (mesh.workload)",
        ["version"] = "the deploy's version has no series before the deploy, so the baseline would be blind; select the workload instead (runbooks/README.md, \"Placeholders\")",
        ["previousVersion"] = "the previous version's series stop being the service at the deploy, so the watch would judge the old pods; select the workload instead (runbooks/README.md, \"Placeholders\")",
    };

    // {{ name }} with optional spaces or tabs inside the braces (Flagger's and Argo Rollouts' spelling); the name is read
    // widely (args.service-name, variables.x) so that such a peer's name is reported as unknown, not as malformed.
    [GeneratedRegex(@"\G\{\{[ \t]*([A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*\}\}", RegexOptions.CultureInvariant)]
    private static partial Regex Placeholder();

    /// <summary>Where a placeholder stands in the PromQL text, which decides how its value is written there.</summary>
    private enum Context
    {
        Bare,
        DoubleQuoted,
        SingleQuoted,
        RawString,
        Comment,
    }

    private sealed record Found(int Offset, int Length, string Name, Context Context, bool Regex);

    /// <summary>A problem with a query's placeholders, at <paramref name="Offset"/> in the query's text.</summary>
    public sealed record Problem(int Offset, string Reason);

    /// <summary>Whether the query holds anything to render (any <c>{{</c>); without it the query is sent as written.</summary>
    public static bool HasAny(string? query) => query?.Contains("{{", StringComparison.Ordinal) == true;

    /// <summary>
    /// The problems of a query's placeholders, for the parser: a <c>{{</c> that does not open a well-formed placeholder, a
    /// name not in <paramref name="allowed"/>, a text placeholder outside a quoted string, or one the runbook cannot give
    /// (<c>{{ namespace }}</c> without mesh.namespace). <paramref name="where"/> names the query in the reasons.
    /// </summary>
    public static IReadOnlyList<Problem> Check(string query, IReadOnlyList<string> allowed, string where, RunbookMesh? mesh) =>
        Check(query, allowed, where, mesh, quotedOnly: true);

    /// <summary>
    /// The problems of the placeholders in an alertmanager matcher's double-quoted value or an http check's URL, for the
    /// parser: the same as a check's query's (<see cref="InChecks"/>), but anywhere in <paramref name="text"/>, which is
    /// only the part of the field where a value is escaped (<see cref="RenderMatcherValue"/>, <see cref="RenderUrl"/>).
    /// </summary>
    public static IReadOnlyList<Problem> CheckText(string text, string where, RunbookMesh? mesh) =>
        Check(text, InChecks, where, mesh, quotedOnly: false);

    private static IReadOnlyList<Problem> Check(string query, IReadOnlyList<string> allowed, string where, RunbookMesh? mesh, bool quotedOnly)
    {
        var problems = new List<Problem>();
        if (!HasAny(query))
        {
            return problems;
        }

        foreach (var (found, malformed) in Scan(query))
        {
            if (found is null)
            {
                problems.Add(new Problem(malformed, $"{where} has '{{{{' that does not open a placeholder ('{Excerpt(query, malformed)}'): write {{{{ name }}}}, one of {Names(allowed)}"));
                continue;
            }

            var name = $"{{{{ {found.Name} }}}}";
            if (!allowed.Contains(found.Name, StringComparer.Ordinal))
            {
                var known = InWatch.Contains(found.Name, StringComparer.Ordinal)
                    ? "; it has no value here: a pre-deploy check has no interval"
                    : PeerHints.TryGetValue(found.Name, out var hint) ? $"; {hint}" : "";
                problems.Add(new Problem(found.Offset, $"{where} has the unknown placeholder {name} (known here: {Names(allowed)}){known}"));
            }
            else if (quotedOnly && !Durations.Contains(found.Name) && found.Context is not (Context.DoubleQuoted or Context.SingleQuoted))
            {
                var place = found.Context switch
                {
                    Context.RawString => "inside a `raw string`, which cannot escape its value",
                    Context.Comment => "in a comment",
                    _ => "outside a quoted string",
                };
                problems.Add(new Problem(found.Offset,
                    $"{where} has {name} {place}: a text placeholder stands inside a \"double-quoted\" or 'single-quoted' PromQL string, where its value is escaped (for example label=\"{name}\")"));
            }
            else if (found.Name == Namespace && mesh is { Namespace: null or "" })
            {
                problems.Add(new Problem(found.Offset, $"{where} has {name}, but the runbook gives no mesh.namespace to put there"));
            }
            else if (found.Name == Workload && mesh is { Workload: null or "" })
            {
                problems.Add(new Problem(found.Offset, $"{where} has {name}, but the runbook gives no mesh.workload to put there"));
            }
        }

        return problems;
    }

    /// <summary>
    /// The problems of the placeholders in <c>mesh.namespace</c> or <c>mesh.workload</c>, for the parser: a name, not
    /// PromQL, so only <c>{{ environment }}</c> may stand there, anywhere in it (the parser checks what it gives for each
    /// environment). <c>{{ namespace }}</c> and <c>{{ workload }}</c> would name the mesh by itself.
    /// </summary>
    public static IReadOnlyList<Problem> CheckName(string text, string where)
    {
        var problems = new List<Problem>();
        if (!HasAny(text))
        {
            return problems;
        }

        foreach (var (found, malformed) in Scan(text))
        {
            if (found is null)
            {
                problems.Add(new Problem(malformed, $"{where} has '{{{{' that does not open a placeholder ('{Excerpt(text, malformed)}'): write {{{{ {Environment} }}}}, the only placeholder here"));
            }
            else if (found.Name is Namespace or Workload)
            {
                problems.Add(new Problem(found.Offset, $"{where} has {{{{ {found.Name} }}}}, which stands for mesh.{found.Name} itself: only {{{{ {Environment} }}}} may stand here"));
            }
            else if (found.Name != Environment)
            {
                problems.Add(new Problem(found.Offset, $"{where} has the unknown placeholder {{{{ {found.Name} }}}}: only {{{{ {Environment} }}}} may stand here"));
            }
        }

        return problems;
    }

    /// <summary>
    /// <c>mesh.namespace</c> or <c>mesh.workload</c> (<paramref name="text"/>, as written) for a change in
    /// <paramref name="environment"/>: its <c>{{ environment }}</c> replaced by the environment as it is (a name, not a
    /// PromQL string: the parser has checked the namespace each environment gives). Null stays null.
    /// </summary>
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(text))]
    public static string? RenderName(string? text, string environment) =>
        text is null ? null : Render(text, new Dictionary<string, string>(StringComparer.Ordinal) { [Environment] = environment });

    /// <summary>
    /// The values of the placeholders for a change of the runbook's service in <paramref name="environment"/>: the
    /// runbook's own, the environment as given (it is escaped where it is written), and the watch's interval and rate
    /// window as PromQL durations.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Values(Runbook runbook, string environment)
    {
        ArgumentNullException.ThrowIfNull(runbook);
        var values = TextValues(runbook.Service, runbook.Mesh, environment);
        values[Interval] = MetricQueries.Duration(runbook.Watch.Interval);
        values[Window] = MetricQueries.Duration(MetricQueries.WindowFor(runbook.Watch.Interval));
        return values;
    }

    /// <summary>
    /// The four text placeholders' values for a change of <paramref name="service"/> in <paramref name="environment"/>:
    /// what a pre-deploy check's matcher or URL may hold, and what the parser renders them with for each environment.
    /// </summary>
    public static Dictionary<string, string> TextValues(string service, RunbookMesh? mesh, string environment)
    {
        var names = mesh?.For(environment);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [Service] = service,
            [Environment] = environment,
            [Namespace] = names?.Namespace ?? "",
            [Workload] = names?.Workload ?? "",
        };
    }

    /// <summary>
    /// The query with its placeholders replaced by <paramref name="values"/>, each escaped for where it stands; the query
    /// itself when it has none. The parser has checked the query, so every placeholder has a value; a query that was not
    /// checked and holds a name without one throws rather than be sent half-rendered.
    /// </summary>
    public static string Render(string query, IReadOnlyDictionary<string, string> values) => Render(query, values, null);

    /// <summary>
    /// <see cref="Render(string, IReadOnlyDictionary{string, string})"/> with each value written by
    /// <paramref name="written"/>, or escaped for the PromQL string it stands in when that is null.
    /// </summary>
    private static string Render(string query, IReadOnlyDictionary<string, string> values, Func<string, string>? written)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(values);
        if (!HasAny(query))
        {
            return query;
        }

        var text = new StringBuilder(query.Length + 32);
        var at = 0;
        foreach (var (found, malformed) in Scan(query))
        {
            if (found is null || !values.TryGetValue(found.Name, out var value))
            {
                throw new ArgumentException($"the query has an unchecked placeholder at {(found?.Offset ?? malformed).ToString(CultureInfo.InvariantCulture)}: {query}", nameof(query));
            }

            text.Append(query, at, found.Offset - at).Append(written is null ? Written(value, found) : written(value));
            at = found.Offset + found.Length;
        }

        return text.Append(query, at, query.Length - at).ToString();
    }

    /// <summary>
    /// An alertmanager matcher's value (<paramref name="value"/>, as written between its double quotes) with its
    /// placeholders replaced: each value escaped as Alertmanager's matcher syntax unescapes a quoted value (a backslash, a
    /// double quote, a line break), and for a regex operator (<paramref name="regex"/>: <c>=~</c>, <c>!~</c>) its regex
    /// characters escaped first, so it is matched literally. The value itself when it has none.
    /// </summary>
    public static string RenderMatcherValue(string value, bool regex, IReadOnlyDictionary<string, string> values) =>
        Render(value, values, v => MatcherEscaped(regex ? MetricQueries.RegexLiteral(v) : v));

    /// <summary>
    /// An http check's URL with its placeholders replaced, each value percent-encoded (RFC 3986: everything but letters,
    /// digits and <c>-._~</c>), so no value can add a path segment, a query, a port or a host of its own; the parser checks
    /// what each listed environment gives. The URL itself when it has none.
    /// </summary>
    public static string RenderUrl(string url, IReadOnlyDictionary<string, string> values) =>
        Render(url, values, Uri.EscapeDataString);

    /// <summary>
    /// The runbook with every query, alertmanager matcher and http URL, and the mesh's namespace and workload, rendered for a change in
    /// <paramref name="environment"/>: what the pre-deploy checks and the watch send, and what is stored as evidence. The
    /// runbook itself when nothing in it has a placeholder.
    /// </summary>
    public static Runbook ForEnvironment(Runbook runbook, string environment)
    {
        ArgumentNullException.ThrowIfNull(runbook);
        if (!runbook.Mesh.UsesEnvironment
            && !runbook.PreDeploy.Checks.Any(c => HasAny(c.Prometheus?.Query) || HasAny(c.Http?.Url) || c.Alertmanager?.Matchers.Any(HasAny) == true)
            && !runbook.Watch.Metrics.Any(m => HasAny(m.Query)))
        {
            return runbook;
        }

        var values = Values(runbook, environment);
        var mesh = runbook.Mesh.For(environment);
        return runbook with
        {
            Mesh = new RunbookMesh(mesh.Provider, mesh.Namespace, mesh.Workload),
            PreDeploy = runbook.PreDeploy with
            {
                Checks = [.. runbook.PreDeploy.Checks.Select(c => c switch
                {
                    { Prometheus: { } p } => c with { Prometheus = p with { Query = Render(p.Query, values) } },
                    { Alertmanager: { } a } => c with { Alertmanager = a with { Matchers = [.. a.Matchers.Select(m => RenderMatcher(m, values))] } },
                    { Http: { } h } => c with { Http = h with { Url = RenderUrl(h.Url, values) } },
                    _ => c,
                })],
            },
            Watch = runbook.Watch with
            {
                Metrics = [.. runbook.Watch.Metrics.Select(m => m.Query is { } q ? m with { Query = Render(q, values) } : m)],
            },
        };
    }

    /// <summary>
    /// Whether what the runbook sends to Prometheus depends on the environment: a query with <c>{{ environment }}</c>, or
    /// a mesh whose namespace or workload has it and a preset or a query that selects them. Then where it runs must name one.
    /// </summary>
    public static bool UsesEnvironment(Runbook runbook)
    {
        ArgumentNullException.ThrowIfNull(runbook);
        var mesh = runbook.Mesh.UsesEnvironment;
        string[] names = mesh ? [Environment, Namespace, Workload] : [Environment];
        return (mesh && runbook.Watch.Metrics.Any(m => m.Preset is not null))
            || runbook.PreDeploy.Checks.Select(c => c.Prometheus?.Query).Concat(runbook.Watch.Metrics.Select(m => m.Query))
                .Any(q => HasAny(q) && Scan(q!).Any(f => names.Contains(f.Found?.Name)));
    }

    /// <summary>A value as it is written where the placeholder stands.</summary>
    private static string Written(string value, Found found)
    {
        var literal = found.Regex ? MetricQueries.RegexLiteral(value) : value;
        return found.Context switch
        {
            Context.DoubleQuoted => Escaped(literal, '"'),
            Context.SingleQuoted => Escaped(literal, '\''),
            // Only the durations may stand here (Check), and RolloutGate writes those: 5m, 1h.
            _ => literal,
        };
    }

    /// <summary>
    /// An alertmanager matcher (<c>label="value"</c>, as the parser checked it: placeholders only in the value) rendered:
    /// the label and operator as written, the value by <see cref="RenderMatcherValue"/>.
    /// </summary>
    public static string RenderMatcher(string matcher, IReadOnlyDictionary<string, string> values)
    {
        ArgumentNullException.ThrowIfNull(matcher);
        if (!HasAny(matcher))
        {
            return matcher;
        }

        var quote = matcher.IndexOf('"', StringComparison.Ordinal);
        var end = matcher.LastIndexOf('"');
        if (quote < 0 || end <= quote || HasAny(matcher[..quote]))
        {
            throw new ArgumentException($"the matcher has a placeholder outside its quoted value: {matcher}", nameof(matcher));
        }

        var regex = AfterRegexOperator(matcher, quote);
        return matcher[..(quote + 1)] + RenderMatcherValue(matcher[(quote + 1)..end], regex, values) + matcher[end..];
    }

    /// <summary>
    /// A value inside an Alertmanager matcher's double-quoted value: Alertmanager unescapes <c>\\</c>, <c>\"</c> and
    /// <c>\n</c> there (and nothing else), so those three are escaped and everything else is written as it is.
    /// </summary>
    private static string MatcherEscaped(string value) =>
        value.Replace(@"\", @"\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);

    /// <summary>
    /// A value inside a PromQL string quoted with <paramref name="quote"/> (Go's escapes): a backslash, the quote and every
    /// control character escaped, so the string ends where the runbook's author ended it and holds exactly the value.
    /// </summary>
    private static string Escaped(string value, char quote)
    {
        var text = new StringBuilder(value.Length + 8);
        foreach (var c in value)
        {
            _ = c switch
            {
                '\\' => text.Append(@"\\"),
                '\n' => text.Append(@"\n"),
                '\r' => text.Append(@"\r"),
                '\t' => text.Append(@"\t"),
                _ when c == quote => text.Append('\\').Append(c),
                _ when char.IsControl(c) => text.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => text.Append(c),
            };
        }

        return text.ToString();
    }

    /// <summary>
    /// Every <c>{{</c> in the query in order: a placeholder with where it stands, or (Found null) the offset of one that
    /// opens none. Follows PromQL's strings (double- and single-quoted with backslash escapes, backquoted raw) and
    /// <c>#</c> comments, so the value of a placeholder is escaped for the string it is in.
    /// </summary>
    private static IEnumerable<(Found? Found, int Malformed)> Scan(string query)
    {
        var context = Context.Bare;
        var regex = false;
        for (var i = 0; i < query.Length; i++)
        {
            if (query[i] == '{' && i + 1 < query.Length && query[i + 1] == '{')
            {
                var match = Placeholder().Match(query, i);
                if (!match.Success)
                {
                    yield return (null, i);
                    i++;
                    continue;
                }

                yield return (new Found(i, match.Length, match.Groups[1].Value, context, regex && context is Context.DoubleQuoted or Context.SingleQuoted), -1);
                i += match.Length - 1;
                continue;
            }

            var c = query[i];
            switch (context)
            {
                case Context.Bare:
                    (context, regex) = c switch
                    {
                        '"' => (Context.DoubleQuoted, AfterRegexOperator(query, i)),
                        '\'' => (Context.SingleQuoted, AfterRegexOperator(query, i)),
                        '`' => (Context.RawString, false),
                        '#' => (Context.Comment, false),
                        _ => (Context.Bare, false),
                    };
                    break;
                case Context.DoubleQuoted or Context.SingleQuoted:
                    if (c == '\\')
                    {
                        i++;
                    }
                    else if (c == (context == Context.DoubleQuoted ? '"' : '\''))
                    {
                        context = Context.Bare;
                    }

                    break;
                case Context.RawString when c == '`':
                case Context.Comment when c == '\n':
                    context = Context.Bare;
                    break;
            }
        }
    }

    /// <summary>Whether the string opening at <paramref name="quote"/> is the regex of a <c>=~</c> or <c>!~</c> matcher.</summary>
    private static bool AfterRegexOperator(string query, int quote)
    {
        var before = query[..quote].TrimEnd();
        return before.EndsWith("=~", StringComparison.Ordinal) || before.EndsWith("!~", StringComparison.Ordinal);
    }

    private static string Names(IReadOnlyList<string> names) => string.Join(", ", names.Select(n => $"{{{{ {n} }}}}"));

    /// <summary>The text from <paramref name="offset"/> to the end of its line, at most 24 characters of it.</summary>
    private static string Excerpt(string query, int offset)
    {
        var line = query[offset..].Split('\n')[0];
        return TextCut.Shorten(line, 24);
    }
}
