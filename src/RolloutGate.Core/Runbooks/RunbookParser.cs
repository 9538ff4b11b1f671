using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Watch;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace RolloutGate.Core.Runbooks;

/// <summary>
/// Turns the text of one runbook file into a <see cref="Runbook"/> or into every error it contains, each with the
/// file, the line and a reason a person can act on. It never throws for bad input: a broken runbook must be refused
/// with an explanation, not crash the loader or the CLI.
/// </summary>
/// <remarks>
/// Uses YamlDotNet's representation model rather than deserializing into classes, because only the node tree keeps
/// the line of every value and lets unknown fields be reported all at once instead of failing on the first.
/// Invalid values are replaced by placeholders while reading so that the rest of the file is still checked; any
/// error discards the whole runbook, so a placeholder never escapes.
/// </remarks>
public static partial class RunbookParser
{
    private static readonly string[] TopFields = ["apiVersion", "kind", "metadata", "spec"];
    private static readonly string[] MetadataFields = ["name", "version"];
    private static readonly string[] SpecFields = ["service", "environments", "owner", "approvers", "decisionChannel", "mesh", "preDeploy", "watch", "rollback"];
    private static readonly string[] MeshFields = ["provider", "namespace", "workload"];
    private static readonly string[] MeshProviders = ["istio", "linkerd", "none"];
    private static readonly string[] PreDeployFields = ["timeout", "checks"];
    private static readonly string[] CheckKinds = ["prometheus", "alertmanager", "freeze", "http"];
    private static readonly string[] CheckFields = ["name", .. CheckKinds];
    private static readonly string[] PrometheusFields = ["query", "min", "max"];
    private static readonly string[] AlertmanagerFields = ["matchers"];
    private static readonly string[] FreezeFields = ["timezone", "windows", "dates"];
    private static readonly string[] DatedWindowFields = ["from", "to", "reason"];
    private static readonly string[] HttpFields = ["url", "expectStatus", "bodyContains", "timeout"];
    private static readonly string[] WatchFields = ["duration", "interval", "baseline", "warmup", "timezone", "onNewerDeploy", "metrics", "stopRules"];
    private static readonly string[] StopRulesFields = ["maxBlind"];
    private static readonly string[] MetricFields = ["name", "preset", "query", "max", "min", "maxIncrease", "pricing", "worse"];
    private static readonly string[] WorseDirections = ["higher", "lower"];
    private static readonly string[] PricingFields = ["cpuCoreHour", "memoryGiBHour"];
    private static readonly string[] RollbackFields = ["mode", "approvalTimeout", "onTimeout", "action"];
    private static readonly string[] RollbackModes = ["auto", "recommend"];
    private static readonly string[] TimeoutActions = ["rollback", "keep"];
    private static readonly string[] NewerDeployActions = ["keep", "stop"];
    private static readonly string[] ActionKinds = ["istio", "linkerd", "smi", "argoRollouts", "webhook"];
    private static readonly string[] KubernetesActionKinds = ["istio", "linkerd", "smi", "argoRollouts"];
    private static readonly string[] IstioFields = ["virtualService", "stableSubset"];
    private static readonly string[] LinkerdFields = ["httpRoute", "stableBackend"];
    private static readonly string[] SmiFields = ["trafficSplit", "stableBackend"];
    private static readonly string[] ArgoRolloutsFields = ["rollout"];
    private static readonly string[] WebhookFields = ["url", "secret"];

    /// <summary>Every field name the parser accepts anywhere; runbooks/schema.json is tested against it.</summary>
    internal static IReadOnlySet<string> KnownFieldNames { get; } = new[]
    {
        TopFields, MetadataFields, SpecFields, MeshFields, PreDeployFields, CheckFields, PrometheusFields, AlertmanagerFields,
        FreezeFields, DatedWindowFields, HttpFields, WatchFields, StopRulesFields, MetricFields, PricingFields, RollbackFields,
        ActionKinds, IstioFields, LinkerdFields, SmiFields, ArgoRolloutsFields, WebhookFields,
    }.SelectMany(fields => fields).ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex DnsLabel();

    /// <summary>
    /// The longest name of the objects a rollback patches (VirtualService, HTTPRoute, TrafficSplit, Rollout): a DNS
    /// subdomain, https://kubernetes.io/docs/concepts/overview/working-with-objects/names/. A name the API server cannot
    /// hold fails the rollback only when it is needed; the runbook is refused instead.
    /// </summary>
    public const int MaxObjectNameLength = 253;

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant)]
    private static partial Regex DnsSubdomain();

    private static bool IsObjectName(string name) => name.Length <= MaxObjectNameLength && DnsSubdomain().IsMatch(name);

    // Alertmanager's matcher syntax: label, operator, double-quoted value with backslash escapes.
    [GeneratedRegex("""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$""", RegexOptions.CultureInvariant)]
    private static partial Regex Matcher();

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ", RegexOptions.CultureInvariant)]
    private static partial Regex YamlExceptionPosition();

    /// <summary>
    /// The largest runbook file, 1 MiB: hundreds of times a real one (the samples are 2 to 3 KB). Every distinct content
    /// is kept in full in the database and every replica re-reads the folder every two seconds, so a file that is a log
    /// or a data dump saved under the wrong name is refused rather than parsed and stored.
    /// </summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>
    /// The longest metric name. It is part of the key of every evaluation and baseline, with the deployment id (at most
    /// 256 characters), and a btree entry cannot exceed about a third of a page, 2,704 bytes
    /// (https://www.postgresql.org/docs/current/btree.html): a longer name would make PostgreSQL refuse the watch's
    /// evaluations, and with them those of every watch stored in the same transaction.
    /// </summary>
    public const int MaxMetricNameLength = 256;

    public static RunbookParseResult Parse(string yaml, string file)
    {
        var errors = new RunbookErrorSink(file);
        if (Encoding.UTF8.GetByteCount(yaml ?? "") is var size and > MaxFileBytes)
        {
            return new RunbookParseResult(null, [TooLarge(file, Encoding.UTF8.GetBytes(yaml!), size)]);
        }

        // A byte-order mark is part of the file (and of its sha256) but not of the YAML.
        var root = LoadSingleDocument((yaml ?? "").TrimStart('\uFEFF'), errors);
        var runbook = root is null ? null : ReadRunbook(root, errors);
        if (runbook is null || errors.Errors.Count > 0)
        {
            // In file order, the way an editor or a reviewer walks through them; the warnings too, so that one run of
            // runbooks validate says all there is to fix, not the warnings only once the errors are gone.
            return new RunbookParseResult(null, errors.Errors.OrderBy(e => e.Line).ToList()) { Warnings = errors.Warnings };
        }

        return new RunbookParseResult(runbook with { Sha256 = Sha256Of(yaml!) }, []) { Warnings = errors.Warnings };
    }

    /// <summary>
    /// Lowercase hex SHA-256 of the text as UTF-8, the fingerprint recorded with each runbook version. For text decoded
    /// from a UTF-8 file without dropping its byte-order mark, this equals the hash of the file's bytes.
    /// </summary>
    public static string Sha256Of(string text) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>
    /// The error for a file of <paramref name="size"/> bytes, more than <see cref="MaxFileBytes"/>, at the line on which
    /// its bytes pass that limit. <paramref name="start"/> is the file's first <see cref="MaxFileBytes"/> + 1 bytes (or
    /// more): all a reader needs to read of a file to refuse it (a log of gigabytes saved in the folder by mistake).
    /// </summary>
    public static RunbookError TooLarge(string file, ReadOnlySpan<byte> start, long size) =>
        new(file, 1 + start[..MaxFileBytes].Count((byte)'\n'),
            $"the file is {size} bytes long; a runbook file is at most {MaxFileBytes} bytes (1 MiB), and this line passes that size");

    private static YamlNode? LoadSingleDocument(string yaml, RunbookErrorSink errors)
    {
        var stream = new YamlStream();
        var parser = new Parser(new StringReader(yaml));
        try
        {
            stream.Load(new YamlDepthLimit(parser));
        }
        catch (YamlException ex)
        {
            var message = YamlExceptionPosition().Replace(ex.Message, "");
            var (line, note) = YamlErrorLine.ToEdit(yaml, (int)ex.Start.Line, message);
            errors.Add(line, $"YAML syntax error: {message}{(note is null ? "" : $" ({note})")}");
            return null;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or InvalidCastException)
        {
            // Some malformed input (an unclosed [ at the end of the file) ends the parser without a YamlException;
            // the last event it read is the nearest line we can give.
            errors.Add((int)(parser.Current?.End.Line ?? 1), "YAML syntax error: the document is not well-formed here (often an unclosed [ ], { } or quote)");
            return null;
        }

        if (stream.Documents.Count == 0)
        {
            errors.Add(1, "the file is empty: expected a runbook (apiVersion, kind, metadata, spec)");
            return null;
        }

        if (stream.Documents.Count > 1)
        {
            errors.Add((int)stream.Documents[1].RootNode.Start.Line, $"the file holds {stream.Documents.Count} YAML documents; a runbook file holds exactly one");
            return null;
        }

        return stream.Documents[0].RootNode;
    }

    private static Runbook? ReadRunbook(YamlNode root, RunbookErrorSink errors)
    {
        var top = errors.Section(root, "", TopFields);
        if (top is null)
        {
            return null;
        }

        ExpectConstant(top, "apiVersion", RunbookDefaults.ApiVersion);
        ExpectConstant(top, "kind", RunbookDefaults.Kind);

        var metadata = top.Section("metadata", MetadataFields, required: true);
        var name = metadata?.Text("name", required: true);
        if (name is not null && !DnsLabel().IsMatch(name))
        {
            metadata!.Error("name", $"metadata.name must be a DNS label (lowercase letters, digits and '-', at most 63 characters), got '{name}'");
        }

        var version = metadata?.Value<int>("version", RunbookValues.TryParsePositiveInteger, "a positive whole number", required: true);

        var spec = top.Section("spec", SpecFields, required: true);
        if (spec is null)
        {
            return null;
        }

        var environments = spec.TextList("environments", required: true, whenEmpty: NoEnvironment) ?? [];
        var mesh = ReadMesh(spec, environments);
        var knownMesh = mesh ?? new RunbookMesh(MeshProvider.None, null, null);
        var service = spec.Text("service", required: true) ?? "";
        return new Runbook(
            Name: name ?? "",
            Version: version ?? 0,
            Service: service,
            Environments: environments,
            Owner: spec.Text("owner", required: true) ?? "",
            Approvers: spec.TextList("approvers") ?? [],
            DecisionChannel: spec.Text("decisionChannel", required: true) ?? "",
            Mesh: knownMesh,
            PreDeploy: ReadPreDeploy(spec, new Governed(service, environments, mesh), errors),
            Watch: ReadWatch(spec, mesh, errors),
            Rollback: ReadRollback(spec, mesh))
        {
            NameLine = metadata?.LineOf("name") ?? 1,
            ServiceLine = spec.LineOf("service"),
        };
    }

    /// <summary><c>environments: []</c>: a webhook is governed only in a listed environment, so no change would be.</summary>
    private static readonly EmptyList NoEnvironment = new(
        "environment",
        "a runbook governs a change only in an environment it lists, so with none it would govern no change",
        "environments: [production] (the environment names the CD webhooks send)");

    /// <summary>
    /// <c>matchers: []</c>: the check filters Alertmanager's active alerts by its matchers alone (AlertmanagerCheck), so
    /// with none every alert would hold this service back.
    /// </summary>
    private static readonly EmptyList NoMatcher = new(
        "matcher",
        "with none the check would match every active alert, of every service, and fail while any of them fires",
        """matchers: ['service="{{ service }}"', 'severity="critical"']""");

    /// <summary>
    /// <c>metrics: []</c>: a watch judges only its metrics. The example is one the runbook's mesh takes: a preset needs
    /// istio or linkerd, a query works with any (and where the mesh is wrong, reported already).
    /// </summary>
    private static EmptyList NoMetric(RunbookMesh? mesh) => new(
        "metric",
        "a watch with none would judge nothing after the deploy, and never find a regression to roll back",
        mesh?.Provider is MeshProvider.Istio or MeshProvider.Linkerd
            ? "metrics: [{name: error-rate, preset: error-rate, max: 2%}]"
            : """metrics: [{name: errors, query: 'sum(rate(http_requests_total{code=~"5.."}[5m]))', max: 1}]""");

    private static void ExpectConstant(YamlSection section, string field, string expected)
    {
        var value = section.Text(field, required: true);
        if (value is not null && value != expected)
        {
            section.Error(field, $"{field} must be '{expected}', got '{value}'");
        }
    }

    /// <summary>The mesh, or null when it is missing or names no known provider: then the checks that depend on the
    /// mesh are skipped, so one wrong word is reported once and not again at every preset.</summary>
    private static RunbookMesh? ReadMesh(YamlSection spec, IReadOnlyList<string> environments)
    {
        var mesh = spec.Section("mesh", MeshFields, required: true);
        MeshProvider? provider = mesh?.Choice("provider", MeshProviders, required: true) switch
        {
            "istio" => MeshProvider.Istio,
            "linkerd" => MeshProvider.Linkerd,
            "none" => MeshProvider.None,
            _ => null,
        };
        if (mesh is null || provider is not { } known)
        {
            return null;
        }

        // Without a mesh there is nothing to address in the cluster, so namespace and workload become optional.
        var needsWorkload = known != MeshProvider.None;
        var @namespace = mesh.Text("namespace", required: needsWorkload);
        var workload = mesh.Text("workload", required: needsWorkload);
        var placeholderProblems = NamePlaceholderProblems(mesh, "namespace", @namespace) + NamePlaceholderProblems(mesh, "workload", workload);
        if (placeholderProblems > 0 || @namespace is not { Length: > 0 })
        {
            return new RunbookMesh(known, @namespace, workload);
        }

        // {{ environment }} comes from the webhook, and the namespace goes into Kubernetes URLs and PromQL: every value it
        // can take (one per listed environment; another environment is not governed) is checked here, once.
        const string dnsLabel = "a Kubernetes namespace name, a DNS label (lowercase letters, digits and '-', at most 63 characters)";
        if (!QueryPlaceholders.HasAny(@namespace))
        {
            if (!DnsLabel().IsMatch(@namespace))
            {
                mesh.Error("namespace", $"mesh.namespace must be {dnsLabel}, got '{@namespace}'");
            }
        }
        else
        {
            foreach (var environment in environments)
            {
                var rendered = QueryPlaceholders.RenderName(@namespace, environment);
                if (!DnsLabel().IsMatch(rendered))
                {
                    mesh.Error("namespace", $"mesh.namespace '{@namespace}' is '{rendered}' for environment '{environment}', which is not {dnsLabel}");
                }
            }
        }

        return new RunbookMesh(known, @namespace, workload);
    }

    /// <summary>Reports the placeholders of <c>mesh.namespace</c> or <c>mesh.workload</c> that may not stand there; how many.</summary>
    private static int NamePlaceholderProblems(YamlSection mesh, string field, string? text)
    {
        var problems = text is null ? [] : QueryPlaceholders.CheckName(text, mesh.PathOf(field));
        foreach (var problem in problems)
        {
            mesh.Error(field, problem.Reason);
        }

        return problems.Count;
    }

    /// <summary>
    /// What a check's placeholders stand for: the runbook's service and mesh (null when it is wrong) and the environments
    /// whose changes it governs, each of which the parser renders a matcher or a URL for.
    /// </summary>
    private sealed record Governed(string Service, IReadOnlyList<string> Environments, RunbookMesh? Mesh)
    {
        /// <summary>The four text placeholders' values for a change in <paramref name="environment"/>.</summary>
        public IReadOnlyDictionary<string, string> Values(string environment) => QueryPlaceholders.TextValues(Service, Mesh, environment);
    }

    private static PreDeploySpec ReadPreDeploy(YamlSection spec, Governed governed, RunbookErrorSink errors)
    {
        var preDeploy = spec.Section("preDeploy", PreDeployFields);
        if (preDeploy is null)
        {
            return new PreDeploySpec(RunbookDefaults.PreDeployTimeout, []);
        }

        var timeout = preDeploy.Duration("timeout", RunbookValues.MaxCheckTimeout, RunbookValues.MaxCheckTimeoutReason)
            ?? RunbookDefaults.PreDeployTimeout;
        var checks = new List<CheckSpec>();
        foreach (var (node, path) in preDeploy.Items("checks") ?? [])
        {
            var check = errors.Section(node, path, CheckFields);
            if (check is null)
            {
                continue;
            }

            var name = check.Text("name", required: true);
            if (name is not null && checks.Any(c => c.Name == name))
            {
                check.Error("name", $"check name '{name}' is used twice in preDeploy.checks; names must be unique");
            }

            checks.Add(check.ExactlyOneOf(CheckKinds, "check kind") switch
            {
                "prometheus" => new CheckSpec(name ?? "", Prometheus: ReadPrometheusCheck(check, governed.Mesh, errors)),
                "alertmanager" => new CheckSpec(name ?? "", Alertmanager: ReadAlertmanagerCheck(check, governed, errors)),
                "freeze" => new CheckSpec(name ?? "", Freeze: ReadFreezeCheck(check, errors)),
                "http" => new CheckSpec(name ?? "", Http: ReadHttpCheck(check, governed, errors)),
                _ => new CheckSpec(name ?? ""),
            });
        }

        return new PreDeploySpec(timeout, checks);
    }

    private static PrometheusCheckSpec ReadPrometheusCheck(YamlSection check, RunbookMesh? mesh, RunbookErrorSink errors)
    {
        var prometheus = check.Section("prometheus", PrometheusFields);
        var query = prometheus?.Text("query", required: true) ?? "";
        if (prometheus is not null)
        {
            CheckPlaceholders(prometheus, "query", QueryPlaceholders.InChecks, mesh, errors);
        }

        const string bound = "a number (or a percentage such as 1%)";
        var min = prometheus?.Value<double>("min", RunbookValues.TryParseBound, bound);
        var max = prometheus?.Value<double>("max", RunbookValues.TryParseBound, bound);
        if (prometheus is not null && !prometheus.Has("min") && !prometheus.Has("max"))
        {
            errors.Add(prometheus.Line, $"{prometheus.Path} needs at least one of: min, max");
        }
        else if (min > max)
        {
            // The numbers as written, not re-formatted: the reader should recognise their own text.
            prometheus!.Error("min", $"{prometheus.PathOf("min")} ({prometheus.Text("min")}) is above max ({prometheus.Text("max")}); the check could never pass");
        }

        return new PrometheusCheckSpec(query, min, max);
    }

    /// <summary>
    /// The placeholders of a query (<see cref="QueryPlaceholders"/>), each problem at its own line where the query is a
    /// literal block (<c>query: |</c>), else at the query's first line: YAML folds the other styles' lines into one.
    /// </summary>
    private static void CheckPlaceholders(YamlSection section, string field, IReadOnlyList<string> allowed, RunbookMesh? mesh, RunbookErrorSink errors)
    {
        if (section.Find(field) is not YamlScalarNode { Value: { } query } node)
        {
            return;
        }

        foreach (var problem in QueryPlaceholders.Check(query, allowed, section.PathOf(field), mesh))
        {
            var line = node.Style == ScalarStyle.Literal ? (int)node.Start.Line + 1 + query.AsSpan(0, problem.Offset).Count('\n') : (int)node.Start.Line;
            errors.Add(line, problem.Reason);
        }
    }

    private static AlertmanagerCheckSpec ReadAlertmanagerCheck(YamlSection check, Governed governed, RunbookErrorSink errors)
    {
        var alertmanager = check.Section("alertmanager", AlertmanagerFields);
        var matchers = new List<string>();
        foreach (var (node, path) in alertmanager?.Items("matchers", required: true, whenEmpty: NoMatcher) ?? [])
        {
            var match = node is YamlScalarNode { Value: { } text } ? Matcher().Match(text) : Match.Empty;
            if (!match.Success)
            {
                // The label and operator are fixed text: a placeholder there makes no matcher.
                var placeholder = node is YamlScalarNode { Value: { } written } && QueryPlaceholders.HasAny(written.Split('"')[0])
                    ? $"; a placeholder stands only in the double-quoted value (for example env=\"{{{{ {QueryPlaceholders.Environment} }}}}\")"
                    : "";
                errors.Add(node, $"{path} must be a matcher such as service=\"checkout\" (operators =, !=, =~, !~; value in double quotes), got {YamlSection.KindOf(node)}{placeholder}");
                continue;
            }

            var value = match.Groups[3].Value;
            var regex = match.Groups[2].Value is "=~" or "!~";

            var problems = QueryPlaceholders.CheckText(value, $"{path} (its value)", governed.Mesh);
            foreach (var problem in problems)
            {
                errors.Add(node, problem.Reason);
            }

            // The value Alertmanager reads for each governed environment: a regex must compile for every one of them.
            var rendered = problems.Count > 0 || !QueryPlaceholders.HasAny(value)
                ? [(Environment: (string?)null, Value: value)]
                : governed.Environments.Select(e => (Environment: (string?)e, Value: QueryPlaceholders.RenderMatcherValue(value, regex, governed.Values(e)))).ToList();
            var invalid = regex ? rendered.FirstOrDefault(r => !IsValidRegex(r.Value)) : default;
            if (invalid.Value is not null)
            {
                var environment = invalid.Environment is null ? "" : $" for environment '{invalid.Environment}'";
                errors.Add(node, $"{path} has an invalid regular expression{environment}: {invalid.Value}");
            }
            else if (problems.Count == 0)
            {
                matchers.Add(((YamlScalarNode)node).Value!.Trim());
            }
        }

        return new AlertmanagerCheckSpec(matchers);
    }

    private static bool IsValidRegex(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromSeconds(1));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static FreezeCheckSpec ReadFreezeCheck(YamlSection check, RunbookErrorSink errors)
    {
        var freeze = check.Section("freeze", FreezeFields);
        if (freeze is null)
        {
            return new FreezeCheckSpec("", [], []);
        }

        var timezone = ReadTimeZone(freeze, required: true);

        var windows = new List<string>();
        var weekly = new List<WeeklyWindow>();
        var windowItems = freeze.Items("windows");
        foreach (var (node, path) in windowItems ?? [])
        {
            if (node is YamlScalarNode { Value: { } text } && RunbookValues.TryParseWeeklyWindow(text, out var window))
            {
                windows.Add(text);
                weekly.Add(window);
            }
            else
            {
                errors.Add(node, $"{path} must be {RunbookValues.WindowExpectation}, got {YamlSection.KindOf(node)}");
            }
        }

        var dates = new List<DatedWindow>();
        var dateItems = freeze.Items("dates");
        foreach (var (node, path) in dateItems ?? [])
        {
            if (errors.Section(node, path, DatedWindowFields) is { } dated)
            {
                dates.Add(ReadDatedWindow(dated));
            }
        }

        FreezesSomething(freeze, windowItems, dateItems);
        return new FreezeCheckSpec(timezone ?? "", windows, dates) { WeeklyWindows = weekly };
    }

    /// <summary>
    /// A freeze check with no window and no date never fails: it reads as a guard and guards nothing. With both left out
    /// it is refused, as it always was. Written as empty lists (<c>windows: []</c>, a template's last window deleted) it
    /// is a warning at the line of the empty list, not an error: such a runbook loaded before, and a version in force or on
    /// record (a deployment governed by it) must still load after an upgrade. A list that is not a list has been reported
    /// already, and is not reported again here.
    /// </summary>
    private static void FreezesSomething(
        YamlSection freeze, IReadOnlyList<(YamlNode, string)>? windowItems, IReadOnlyList<(YamlNode, string)>? dateItems)
    {
        var notLists = (freeze.Has("windows") && windowItems is null) || (freeze.Has("dates") && dateItems is null);
        if (notLists || windowItems is { Count: > 0 } || dateItems is { Count: > 0 })
        {
            return;
        }

        const string Fix = "Give a weekly window (windows: [\"Fri 16:00 - Mon 08:00\"]) or a date range (dates: [{from: 2026-12-24, to: 2026-12-26}]), or remove the check";
        var empty = new[] { ("windows", windowItems), ("dates", dateItems) }.Where(list => list.Item2 is not null).Select(list => list.Item1).ToList();
        if (empty.Count == 0)
        {
            freeze.Error("windows", $"{freeze.Path} needs at least one of: windows, dates; a freeze with neither never fails. {Fix}");
            return;
        }

        var written = empty.Count == 1 ? $"{empty[0]} is an empty list" : "both are empty lists";
        freeze.Warning(empty[0], $"{freeze.Path} freezes nothing ({written}): this check never fails. {Fix}");
    }

    /// <summary>The section's <c>timezone</c>: an IANA zone id the system resolves (checked here, so a watch or check never meets an unknown one).</summary>
    private static string? ReadTimeZone(YamlSection section, bool required)
    {
        var timezone = section.Text("timezone", required);
        if (timezone is not null && !RunbookValues.TryFindTimeZone(timezone, out _))
        {
            section.Error("timezone", $"{section.PathOf("timezone")} '{timezone}' is not a known time zone (use an IANA name such as Europe/Berlin)");
        }

        return timezone;
    }

    private static DatedWindow ReadDatedWindow(YamlSection dated)
    {
        var from = ReadLocalDate(dated, "from", endOfDay: false);
        var to = ReadLocalDate(dated, "to", endOfDay: true);
        if (from >= to)
        {
            dated.Error("to", $"{dated.PathOf("to")} must be after from");
        }

        return new DatedWindow(from ?? default, to ?? default, dated.Text("reason"));
    }

    private static DateTime? ReadLocalDate(YamlSection dated, string field, bool endOfDay)
    {
        var text = dated.Text(field, required: true);
        if (text is null)
        {
            return null;
        }

        if (!RunbookValues.TryParseLocalDate(text.Trim(), out var value, out var dateOnly))
        {
            dated.Error(field, $"{dated.PathOf(field)} must be {RunbookValues.DateExpectation}, got '{text}'");
            return null;
        }

        if (value < RunbookValues.EarliestDate || value >= RunbookValues.LatestDate.AddDays(1))
        {
            dated.Error(field, $"{dated.PathOf(field)} '{text}' is out of range: {RunbookValues.DateRangeReason}");
            return null;
        }

        // "to: 2026-12-26" means the whole of the 26th is frozen; the model keeps an exclusive end.
        return endOfDay && dateOnly ? value.AddDays(1) : value;
    }

    private static HttpCheckSpec ReadHttpCheck(YamlSection check, Governed governed, RunbookErrorSink errors)
    {
        var http = check.Section("http", HttpFields);
        var url = http?.Text("url", required: true);
        if (url is not null && QueryPlaceholders.HasAny(url))
        {
            // Each value is percent-encoded where it stands; every governed environment's URL is checked here, once.
            var problems = QueryPlaceholders.CheckText(url, http!.PathOf("url"), governed.Mesh);
            foreach (var problem in problems)
            {
                http.Error("url", problem.Reason);
            }

            foreach (var environment in problems.Count > 0 ? [] : governed.Environments)
            {
                var rendered = QueryPlaceholders.RenderUrl(url, governed.Values(environment));
                if (!Urls.IsAbsoluteHttp(rendered))
                {
                    http.Error("url", $"{http.PathOf("url")} '{Urls.Shown(url)}' is '{Urls.Shown(rendered)}' for environment '{environment}', which is not an absolute http:// or https:// URL");
                }
            }
        }
        else if (url is not null && !Urls.IsAbsoluteHttp(url))
        {
            http!.Error("url", $"{http.PathOf("url")} must be an absolute http:// or https:// URL, got '{Urls.Shown(url)}'");
        }

        var status = http?.Value<int>("expectStatus", TryParseStatus, "an HTTP status code between 100 and 599");
        var timeout = http?.Duration("timeout", RunbookValues.MaxCheckTimeout, RunbookValues.MaxCheckTimeoutReason);
        return new HttpCheckSpec(url ?? "", status ?? RunbookDefaults.HttpExpectStatus, http?.Text("bodyContains"), timeout);
    }

    private static bool TryParseStatus(string text, out int status) =>
        RunbookValues.TryParsePositiveInteger(text, out status) && status is >= 100 and <= 599;

    private static WatchSpec ReadWatch(YamlSection spec, RunbookMesh? mesh, RunbookErrorSink errors)
    {
        var watch = spec.Section("watch", WatchFields, required: true);
        if (watch is null)
        {
            return new WatchSpec(RunbookDefaults.WatchDuration, RunbookDefaults.WatchInterval, RunbookDefaults.WatchBaseline, [], new StopRules(RunbookDefaults.MaxBlind));
        }

        var duration = watch.Duration("duration", RunbookValues.MaxWatchDuration, RunbookValues.MaxWatchDurationReason);
        var interval = watch.Duration("interval", RunbookValues.MaxWatchDuration, RunbookValues.MaxWatchDurationReason,
            shortest: RunbookValues.MinWatchInterval, shortestReason: RunbookValues.MinWatchIntervalReason);
        var baseline = watch.Duration("baseline", RunbookValues.MaxWatchDuration, RunbookValues.MaxWatchDurationReason);
        if ((interval is not null || !watch.Has("interval")) && (interval ?? RunbookDefaults.WatchInterval) >= (duration ?? RunbookDefaults.WatchDuration))
        {
            watch.Error("interval", $"watch.interval ({watch.Text("interval") ?? "1m by default"}) must be shorter than watch.duration ({watch.Text("duration") ?? "24h by default"})");
        }

        var warmup = watch.Duration("warmup", RunbookValues.MaxWatchDuration, RunbookValues.MaxWatchDurationReason, allowZero: true);
        if (warmup is { } w && w >= (duration ?? RunbookDefaults.WatchDuration))
        {
            watch.Error("warmup", $"watch.warmup ({watch.Text("warmup")}) must be shorter than watch.duration ({watch.Text("duration") ?? "24h by default"}), or nothing would ever be compared with the baseline");
        }

        var timezone = ReadTimeZone(watch, required: false);
        var onNewerDeploy = watch.Choice("onNewerDeploy", NewerDeployActions) switch
        {
            "stop" => NewerDeployAction.Stop,
            "keep" => NewerDeployAction.Keep,
            _ => RunbookDefaults.OnNewerDeploy,
        };
        var metrics = new List<MetricSpec>();
        foreach (var (node, path) in watch.Items("metrics", required: true, whenEmpty: NoMetric(mesh)) ?? [])
        {
            if (errors.Section(node, path, MetricFields) is not { } metric)
            {
                continue;
            }

            var read = ReadMetric(metric, mesh, errors);
            if (metrics.Any(m => m.Name == read.Name) && read.Name.Length > 0)
            {
                metric.Error("name", $"metric name '{read.Name}' is used twice in watch.metrics; names must be unique");
            }

            metrics.Add(read);
        }

        if ((baseline is not null || !watch.Has("baseline")) && (interval is not null || !watch.Has("interval")))
        {
            BaselineLongEnough(watch, baseline ?? RunbookDefaults.WatchBaseline, interval ?? RunbookDefaults.WatchInterval, metrics);
        }

        var stopRules = watch.Section("stopRules", StopRulesFields);
        var maxBlind = stopRules?.Duration("maxBlind", RunbookValues.MaxWatchDuration, RunbookValues.MaxWatchDurationReason);
        return new WatchSpec(
            duration ?? RunbookDefaults.WatchDuration,
            interval ?? RunbookDefaults.WatchInterval,
            baseline ?? RunbookDefaults.WatchBaseline,
            metrics,
            new StopRules(maxBlind ?? RunbookDefaults.MaxBlind))
        {
            Warmup = warmup ?? TimeSpan.Zero,
            TimeZone = timezone,
            OnNewerDeploy = onNewerDeploy,
        };
    }

    /// <summary>
    /// A maxIncrease is judged against a baseline of at least <see cref="DetectorOptions.MinBaselineSamples"/> intervals;
    /// with a shorter one that limit is insufficient-data at every interval of every watch, a limit that looks set and never
    /// acts. A warning, not an error: the runbook's max limits, checks and the rest still work, and a runbook that worked
    /// before is not refused now. Said at the baseline, or at the interval when only that was written.
    /// </summary>
    private static void BaselineLongEnough(YamlSection watch, TimeSpan baseline, TimeSpan interval, List<MetricSpec> metrics)
    {
        var needed = DetectorOptions.Default.MinBaselineSamples;
        if (metrics.FirstOrDefault(m => m.MaxIncrease is not null) is not { } relative || baseline / interval >= needed)
        {
            return;
        }

        watch.Warning(watch.Has("baseline") || !watch.Has("interval") ? "baseline" : "interval",
            $"watch.baseline ({watch.Text("baseline") ?? "7d by default"}) holds {(int)(baseline / interval)} intervals of {watch.Text("interval") ?? "1m"}, " +
            $"fewer than the {needed} that maxIncrease (of metric '{relative.Name}') is judged against, so that limit will be insufficient-data " +
            $"at every interval: make the baseline at least {MetricQueries.Duration(interval * needed)}, or give that metric only a max");
    }

    private static MetricSpec ReadMetric(YamlSection metric, RunbookMesh? mesh, RunbookErrorSink errors)
    {
        var name = metric.Text("name", required: true) ?? "";
        if (name.Length > MaxMetricNameLength)
        {
            metric.Error("name", $"{metric.PathOf("name")} is {name.Length} characters long; a metric name is at most {MaxMetricNameLength} characters");
        }

        var source = metric.ExactlyOneOf(["preset", "query"], "metric source");
        var preset = source == "preset" ? metric.Choice("preset", RunbookDefaults.Presets, required: true) : null;
        var query = source == "query" ? metric.Text("query", required: true) : null;
        if (query is not null)
        {
            CheckPlaceholders(metric, "query", QueryPlaceholders.InWatch, mesh, errors);
        }

        if (preset is not null && mesh?.Provider == MeshProvider.None)
        {
            metric.Error("preset", $"{metric.PathOf("preset")} '{preset}' needs mesh.provider istio or linkerd; with no mesh give a query instead");
        }

        var unit = preset switch
        {
            "p95-latency" => ThresholdUnit.Seconds,
            "error-rate" => ThresholdUnit.Fraction,
            "request-rate" or "cost-per-request" => ThresholdUnit.Plain,
            _ => ThresholdUnit.Any,
        };
        var max = metric.Value<double>("max", (string text, out double value) => RunbookValues.TryParseThreshold(text, unit, out value), RunbookValues.ThresholdExpectation(unit));
        var min = metric.Value<double>("min", (string text, out double value) => RunbookValues.TryParseThreshold(text, unit, out value), RunbookValues.ThresholdExpectation(unit));
        var maxIncrease = metric.Value<double>("maxIncrease", RunbookValues.TryParsePercent, RunbookValues.PercentExpectation);
        if (!metric.Has("max") && !metric.Has("min") && !metric.Has("maxIncrease"))
        {
            errors.Add(metric.Line, $"{metric.Path} needs at least one of: max, min, maxIncrease");
        }
        else if (min > max)
        {
            // As the prometheus check's: the numbers as written, at the line of min.
            metric.Error("min", $"{metric.PathOf("min")} ({metric.Text("min")}) is above max ({metric.Text("max")}); the metric could never be within both");
        }

        var pricingSection = metric.Section("pricing", PricingFields, required: preset == "cost-per-request");
        Pricing? pricing = null;
        if (pricingSection is not null)
        {
            if (preset != "cost-per-request")
            {
                metric.Error("pricing", $"{metric.PathOf("pricing")} only applies to preset cost-per-request");
            }

            pricing = new Pricing(
                pricingSection.Value<double>("cpuCoreHour", RunbookValues.TryParseNonNegativeNumber, "a price that is not negative", required: true) ?? 0,
                pricingSection.Value<double>("memoryGiBHour", RunbookValues.TryParseNonNegativeNumber, "a price that is not negative", required: true) ?? 0);
        }

        return new MetricSpec(name, preset, query, max, maxIncrease, pricing) { Min = min, Worse = ReadWorse(metric, preset, maxIncrease) };
    }

    /// <summary>
    /// <c>worse</c>: which way a query's value gets worse. A preset's direction is fixed (request-rate's is lower, the
    /// others' higher), so the field is refused there rather than ignored or allowed to contradict it. It decides only how
    /// maxIncrease is read (a rise or a drop beyond it); max is an upper limit and min a floor either way, so <c>worse: lower</c>
    /// without a maxIncrease would change nothing, and is refused rather than read as if max became a floor.
    /// </summary>
    private static Worse ReadWorse(YamlSection metric, string? preset, double? maxIncrease)
    {
        var worse = metric.Choice("worse", WorseDirections) == "lower" ? Worse.Lower : Worse.Higher;
        if (preset is not null && metric.Has("worse"))
        {
            var fixedDirection = preset == "request-rate"
                ? "lower is always worse: its maxIncrease watches for a drop, its max for a surge"
                : "higher is always worse";
            metric.Error("worse", $"{metric.PathOf("worse")} applies only to a query metric; for preset {preset} {fixedDirection}");
        }
        else if (worse == Worse.Lower && !metric.Has("maxIncrease"))
        {
            metric.Error("worse", $"{metric.PathOf("worse")}: lower needs a maxIncrease, the limit it turns into a drop below the baseline; max stays an upper limit either way (a floor is min), so without a maxIncrease it would change nothing");
        }
        else if (preset == "request-rate" && maxIncrease >= 1)
        {
            // The same limit as worse: lower's below; a warning here, not an error, so a runbook already in force still loads.
            var written = metric.Text("maxIncrease");
            metric.Warning("maxIncrease", $"{metric.PathOf("maxIncrease")} {written} on preset request-rate is a drop of {written} below the baseline, which only no traffic at all reaches, so that limit fires on nothing else: give a drop below 100% (a surge is max's)");
        }
        else if (worse == Worse.Lower && maxIncrease >= 1)
        {
            // The detector would take the limit as a millionth of the reference: a value of exactly 0 alone could pass it.
            var written = metric.Text("maxIncrease");
            metric.Error("worse", $"{metric.PathOf("worse")}: lower reads maxIncrease {written} as a drop of {written} below the baseline, which no value can fall beyond; give a drop below 100%");
        }

        return worse;
    }

    private static RollbackSpec ReadRollback(YamlSection spec, RunbookMesh? mesh)
    {
        var rollback = spec.Section("rollback", RollbackFields);
        if (rollback is null)
        {
            return new RollbackSpec(RunbookDefaults.Mode, RunbookDefaults.ApprovalTimeout, RunbookDefaults.OnTimeout, null);
        }

        var mode = rollback.Choice("mode", RollbackModes) switch
        {
            "auto" => RollbackMode.Auto,
            "recommend" => RollbackMode.Recommend,
            _ => RunbookDefaults.Mode,
        };
        var approvalTimeout = rollback.Duration("approvalTimeout", RunbookValues.MaxWatchDuration, RunbookValues.MaxWatchDurationReason)
            ?? RunbookDefaults.ApprovalTimeout;
        var onTimeout = rollback.Choice("onTimeout", TimeoutActions) switch
        {
            "rollback" => TimeoutAction.Rollback,
            "keep" => TimeoutAction.Keep,
            _ => RunbookDefaults.OnTimeout,
        };

        // RolloutGate acts by itself only when the runbook lets it; then it must know how.
        var mayActAlone = mode == RollbackMode.Auto || onTimeout == TimeoutAction.Rollback;
        var action = ReadRollbackAction(rollback, mesh, required: mayActAlone);
        return new RollbackSpec(mode, approvalTimeout, onTimeout, action);
    }

    private static RollbackAction? ReadRollbackAction(YamlSection rollback, RunbookMesh? mesh, bool required)
    {
        var action = rollback.Section("action", ActionKinds, required);
        if (action is null)
        {
            return null;
        }

        var kind = action.ExactlyOneOf(ActionKinds, "rollback action");
        // With a mesh the namespace is required (and reported) already; without one it is optional but still needed here.
        if (kind is not null && KubernetesActionKinds.Contains(kind) && mesh is { Provider: MeshProvider.None, Namespace: null or "" })
        {
            action.Error(kind, $"rollback.action.{kind} changes a Kubernetes resource and needs mesh.namespace to say where");
        }

        YamlSection? Open(string field, string[] fields) => action.Section(field, fields);
        string Field(YamlSection? section, string field) => section?.Text(field, required: true) ?? "";
        string ObjectName(YamlSection? section, string field)
        {
            var name = Field(section, field);
            if (name.Length > 0 && !IsObjectName(name))
            {
                section!.Error(field, $"{section.PathOf(field)} must be a Kubernetes object name, a DNS subdomain (lowercase letters, digits, '-' and '.', at most {MaxObjectNameLength} characters), got '{name}'");
            }

            return name;
        }

        switch (kind)
        {
            case "istio":
                var istio = Open("istio", IstioFields);
                return new RollbackAction(Istio: new IstioRollback(ObjectName(istio, "virtualService"), Field(istio, "stableSubset")));
            case "linkerd":
                var linkerd = Open("linkerd", LinkerdFields);
                return new RollbackAction(Linkerd: new LinkerdRollback(ObjectName(linkerd, "httpRoute"), Field(linkerd, "stableBackend")));
            case "smi":
                var smi = Open("smi", SmiFields);
                return new RollbackAction(Smi: new SmiRollback(ObjectName(smi, "trafficSplit"), Field(smi, "stableBackend")));
            case "argoRollouts":
                var argo = Open("argoRollouts", ArgoRolloutsFields);
                return new RollbackAction(ArgoRollouts: new ArgoRolloutsRollback(ObjectName(argo, "rollout")));
            case "webhook":
                var webhook = Open("webhook", WebhookFields);
                var url = Field(webhook, "url");
                if (url.Length > 0 && !Urls.IsAbsoluteHttp(url))
                {
                    webhook!.Error("url", $"rollback.action.webhook.url must be an absolute http:// or https:// URL, got '{Urls.Shown(url)}'");
                }

                return new RollbackAction(Webhook: new WebhookRollback(url, Field(webhook, "secret")));
            default:
                return null; // ExactlyOneOf has said what is missing.
        }
    }
}
