using System.Globalization;
using System.Text;
using System.Text.Json;
using RolloutGate.Core.Analysis;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Webhooks;

namespace RolloutGate.Slack;

/// <summary>One metric's evidence for a verdict: what was measured, against what, and why it matters.</summary>
/// <param name="Shown">The value, baseline and threshold in the metric's unit ("912 ms (baseline 640 ms, threshold 768 ms)"), when known.</param>
public sealed record MetricEvidence(string Metric, double? Value, double? Baseline, double? Threshold, string? Verdict, string? Explanation, string? Shown = null)
{
    /// <summary>The value, baseline and threshold as messages and pages show them: in the metric's unit when known, else four significant digits.</summary>
    public string Figures => Shown ?? $"{SlackMessages.Number(Value)} (baseline {SlackMessages.Number(Baseline)}, threshold {SlackMessages.Number(Threshold)})";
}

/// <summary>
/// The text of every message in a deployment's thread. Slack mrkdwn: user ids as &lt;@U…&gt;, links as &lt;url|label&gt;;
/// user-supplied text is escaped so it cannot ping a channel or forge a link.
/// </summary>
public static class SlackMessages
{
    public const string RecommendationBlockId = "rolloutgate-decision";

    /// <summary>The longest note that settles a reply's buttons: one line, whoever decided (an actor's name is any text).</summary>
    private const int SettleNote = 500;

    public static string DeploymentLink(string publicUrl, string deploymentId) =>
        $"{publicUrl.TrimEnd('/')}/api/v1/deployments/{Uri.EscapeDataString(deploymentId)}";

    /// <summary>The list of a service's deployments, newest first.</summary>
    public static string ServiceLink(string publicUrl, string service) =>
        $"{publicUrl.TrimEnd('/')}/api/v1/deployments?service={Uri.EscapeDataString(service)}";

    /// <summary>The link to the deployment in mrkdwn, labelled with its id: &lt;url|id&gt;.</summary>
    public static string LinkTo(string publicUrl, string deploymentId) =>
        $"<{DeploymentLink(publicUrl, deploymentId)}|{Escape(deploymentId)}>";

    public static OutboxMessage Root(DeploymentRow deployment, Runbook runbook, string publicUrl)
    {
        var version = deployment.Version ?? "(no version)";
        // The text is mrkdwn too (what notifications show): a version "<!channel>" must not ping the channel from there.
        var text = Escape($"{deployment.Service} {version} in {deployment.Environment}: {deployment.State}");
        var initiator = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"Initiator: {Escape(deployment.Initiator ?? "unknown")}");
        if (deployment.PreviousVersion is { } previous)
        {
            initiator.Append(CultureInfo.InvariantCulture, $" · previous version `{Escape(previous)}`");
        }

        List<string> lines =
        [
            $"*{Escape(deployment.Service)}* `{Escape(version)}` in {Escape(deployment.Environment)}: *{deployment.State}*",
            initiator.ToString(),
            $"{LinkTo(publicUrl, deployment.Id)} · runbook {Escape(runbook.Name)} v{runbook.Version}",
        ];
        if (PreDeployGateBypass.Describe(deployment) is { } bypass)
        {
            lines.Insert(1, $":warning: {Escape(bypass)}");
        }

        return new OutboxMessage(runbook.DecisionChannel, text, Sections(lines));
    }

    /// <summary>
    /// A thread reply with the evidence of a verdict change, linked to the deployment like every message with evidence:
    /// in the text too, which is what notifications, screen readers and the local decision inbox show.
    /// </summary>
    public static OutboxMessage VerdictChanged(string channel, DeploymentRow deployment, string data, string publicUrl)
    {
        var evidence = ParseEvidence(data);
        var link = LinkTo(publicUrl, deployment.Id);
        var text = Notification(deployment, $": a verdict changed · {link}");
        return new OutboxMessage(channel, text, Sections([new LineParts($"*A verdict changed* · {link}", ""), .. Lines(evidence, link).Select(LineParts.Plain)]));
    }

    /// <summary>
    /// A notification's text: the deployment's service and version, then <paramref name="rest"/> (which ends with the link
    /// to it), within <see cref="BlockKitLimits.Text"/>. The service and version are escaped, then cut (<see cref="Cut"/>)
    /// to the room the rest leaves: each may be 256 '&amp;' (1,280 characters escaped), and an id as long its link's 2,100.
    /// </summary>
    private static string Notification(DeploymentRow deployment, string rest) =>
        Cut($"{Escape(deployment.Service)} {Escape(deployment.Version ?? "")}", BlockKitLimits.Text - rest.Length) + rest;

    /// <summary>The question asked when a deployment regresses under rollback.mode recommend: evidence, link and three buttons.</summary>
    /// <param name="held">
    /// Why a <c>rollback.mode: auto</c> rollback was held for a person instead of carried out (no time-out then applies),
    /// or null for a <c>recommend</c> runbook's recommendation.
    /// </param>
    public static OutboxMessage Recommendation(string channel, DeploymentRow deployment, Runbook runbook, IReadOnlyList<MetricEvidence> evidence,
        string publicUrl, string? held = null)
    {
        var timeout = runbook.Rollback.ApprovalTimeout;
        var onTimeout = runbook.Rollback.OnTimeout == TimeoutAction.Rollback ? "roll back" : "keep it";
        var link = LinkTo(publicUrl, deployment.Id);
        var text = Notification(deployment, $" regressed: roll back? · {link}");
        string[] rest =
        [
            held is null ? "RolloutGate recommends a rollback." : $"RolloutGate would roll back automatically, but holds it: {Escape(held)}.",
            .. Lines(evidence, link),
            held is null
                ? $"Without an answer within {Duration(timeout)}, RolloutGate will {onTimeout}. Owner and approvers may decide."
                : "Nothing happens until someone decides. Owner and approvers may decide.",
        ];
        // The headline's link stays whole however long the service and version.
        LineParts[] body = [new("*", $"{Escape(deployment.Service)} `{Escape(deployment.Version ?? "")}", $"` regressed* · {link}"), .. rest.Select(LineParts.Plain)];
        ButtonElement[] buttons =
        [
            new(DecisionKinds.Rollback, SlackText.Plain("Roll back"), deployment.Id, "danger"),
            new(DecisionKinds.Dismiss, SlackText.Plain("Keep"), deployment.Id),
            new(DecisionKinds.Stop, SlackText.Plain("Stop automation"), deployment.Id),
        ];
        return new OutboxMessage(channel, text, [.. Sections(body), new ActionsBlock(RecommendationBlockId, buttons)]);
    }

    /// <summary>A decision, with the reason given (cut past <see cref="BlockKitLimits.Text"/>: see <see cref="Fit"/>).</summary>
    public static OutboxMessage Decision(string channel, string deploymentId, string? actor, string data, string publicUrl)
    {
        using var document = JsonDocument.Parse(data);
        var kind = Text(document.RootElement, "kind") ?? "decision";
        var reason = Text(document.RootElement, "reason");
        var source = Text(document.RootElement, "source");
        var text = $"{Who(actor)} decided *{Escape(kind)}*" + (source is null ? "" : $" (via {Escape(source)})");
        return new OutboxMessage(channel,
            string.IsNullOrWhiteSpace(reason) ? text : Fit($"{text}: ", Escape(reason), "", LinkTo(publicUrl, deploymentId)), null);
    }

    /// <summary>What settled a recommendation's or a retry's buttons: a decision (who decided what).</summary>
    public static string SettledByDecision(string? actor, string data)
    {
        using var document = JsonDocument.Parse(data);
        return Cut($"Decided: {Who(actor)} decided *{Escape(Text(document.RootElement, "kind") ?? "decision")}*; these buttons no longer apply.", SettleNote);
    }

    /// <summary>What settled them when the deployment moved without a decision here (the pipeline's rolledback, say); null for a move to regressed.</summary>
    public static string? SettledByState(string data)
    {
        using var document = JsonDocument.Parse(data);
        return Text(document.RootElement, "to") is { } state && state != DeploymentState.Regressed
            ? $"The deployment is now *{Escape(state)}*; these buttons no longer apply."
            : null;
    }

    /// <summary>A reply that offered buttons, as it reads once settled: its text and sections, and <paramref name="note"/> where its buttons were.</summary>
    public static IReadOnlyList<object> Settled(IReadOnlyList<object>? blocks, string note) =>
    [
        .. (blocks ?? []).Where(block => block is not JsonElement { ValueKind: JsonValueKind.Object } element
            || !element.TryGetProperty("type", out var type) || type.GetString() != "actions"),
        new ContextBlock([SlackText.Markdown(note)]),
    ];

    public static OutboxMessage Refusal(string channel, string deploymentId, string? actor, string data, string publicUrl)
    {
        using var document = JsonDocument.Parse(data);
        var action = Text(document.RootElement, "action") ?? "act";
        var reason = Text(document.RootElement, "reason") ?? "not allowed";
        return new OutboxMessage(channel,
            Fit($"Refused: {Who(actor)} tried to *{Escape(action)}*: ", Escape(reason), ". Nothing changed.", LinkTo(publicUrl, deploymentId)), null);
    }

    /// <summary>
    /// The outcome of a rollback action. A failed action (one there was: not "none configured") leaves the deployment
    /// rolling back, so the reply asks what next: retry it (a new rollback decision) or stop the automation. Not when the
    /// deployment is no longer <paramref name="state"/> rolling-back (an action halted by a stop): neither would be allowed.
    /// </summary>
    public static OutboxMessage RollbackAction(string channel, string deploymentId, string state, string data, string publicUrl)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        var outcome = Text(root, "outcome") ?? Text(root, "status") ?? "done";
        var action = Text(root, "action") ?? Text(root, "kind") ?? "rollback action";
        var detail = Text(root, "detail") ?? Text(root, "error");
        var head = $"Rollback action {Escape(action)}: *{Escape(outcome)}*" + (detail is null ? "" : " (");
        var quoted = detail is null ? "" : Escape(detail);
        var end = detail is null ? "" : ")";
        var link = LinkTo(publicUrl, deploymentId);
        if (outcome != "failed" || DeploymentDecisions.CannotRetry(action))
        {
            return new OutboxMessage(channel, Fit(head, quoted, end, link), null);
        }

        if (state != DeploymentState.RollingBack)
        {
            return new OutboxMessage(channel,
                Fit(head, quoted, $"{end} The deployment is {Escape(state)}: traffic may still go to the new version; roll back by other means if it must.", link),
                null);
        }

        // The text is the section too: cut to a section's length, so that the question and the link stay in it.
        var text = Fit(head, quoted,
            $"{end} Traffic may still go to the new version. Retry the rollback, or stop the automation and roll back by other means.", link,
            BlockKitLimits.SectionText);
        ButtonElement[] buttons =
        [
            new(DecisionKinds.Rollback, SlackText.Plain("Retry rollback"), deploymentId, "danger"),
            new(DecisionKinds.Stop, SlackText.Plain("Stop automation"), deploymentId),
        ];
        return new OutboxMessage(channel, text, [.. Sections([text]), new ActionsBlock(RecommendationBlockId, buttons)]);
    }

    /// <summary>
    /// Evidence from an evaluation.verdict-changed event's data: either one metric's fields at the top level or a
    /// <c>metrics</c> array of them (metric or name, value, baseline, threshold, verdict, explanation).
    /// </summary>
    public static IReadOnlyList<MetricEvidence> ParseEvidence(string data)
    {
        using var document = JsonDocument.Parse(data);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("metrics", out var metrics) && metrics.ValueKind == JsonValueKind.Array)
        {
            return metrics.EnumerateArray().Select(Evidence).ToList();
        }

        return root.ValueKind == JsonValueKind.Object ? [Evidence(root)] : [];
    }

    /// <summary>
    /// The most metrics one message lists. Past it the rest are counted in one last line that links to the deployment,
    /// whose page has them all: <see cref="Sections"/> shares <see cref="BlockKitLimits.MessageText"/> among the lines,
    /// so at most this many leave each metric a few hundred characters, enough for its name and figures, where three
    /// hundred metrics (a runbook watching every route, all blind when Prometheus is down) would each keep forty.
    /// </summary>
    public const int MaxListedMetrics = 40;

    /// <summary>One line per metric (<see cref="Line"/>), at most <see cref="MaxListedMetrics"/> of them in all.</summary>
    public static IEnumerable<string> Lines(IReadOnlyList<MetricEvidence> evidence, string link) =>
        evidence.Count <= MaxListedMetrics
            ? evidence.Select(Line)
            : [.. evidence.Take(MaxListedMetrics - 1).Select(Line), $"• and {evidence.Count - MaxListedMetrics + 1} more metrics: see {link}"];

    public static string Line(MetricEvidence e) =>
        string.Create(CultureInfo.InvariantCulture,
            $"• *{Escape(e.Metric)}*: {Escape(e.Figures)}")
        + (e.Verdict is null ? "" : $" → {Escape(e.Verdict)}")
        + (string.IsNullOrWhiteSpace(e.Explanation) ? "" : $": {Escape(e.Explanation)}");

    /// <summary>
    /// Lines of mrkdwn as section blocks within Block Kit's limits (<see cref="BlockKitLimits"/>): as many lines to a
    /// section as fit in its 3,000 characters, and all of them together within <see cref="BlockKitLimits.MessageText"/>.
    /// When they do not fit, the longest lines are shortened first, each to an equal share of the room the shorter ones
    /// leave, so that thirty metrics with long explanations all keep their name and figures, and a short line (the
    /// headline, the time-out) is never cut. A shortened line ends with "…".
    /// </summary>
    public static IReadOnlyList<SectionBlock> Sections(IReadOnlyList<string> lines) => Sections([.. lines.Select(LineParts.Plain)]);

    /// <summary>As <see cref="Sections(IReadOnlyList{string})"/>, shortening only the <see cref="LineParts.Text"/> of each line.</summary>
    public static IReadOnlyList<SectionBlock> Sections(IReadOnlyList<LineParts> lines)
    {
        var sections = new List<SectionBlock>();
        var section = new StringBuilder();
        foreach (var line in Shorten(lines, BlockKitLimits.MessageText, BlockKitLimits.SectionText))
        {
            if (section.Length > 0 && section.Length + 1 + line.Length > BlockKitLimits.SectionText)
            {
                sections.Add(new SectionBlock(SlackText.Markdown(section.ToString())));
                section.Clear();
            }

            section.Append(section.Length > 0 ? "\n" : "").Append(line);
        }

        if (section.Length > 0)
        {
            sections.Add(new SectionBlock(SlackText.Markdown(section.ToString())));
        }

        return sections;
    }

    /// <summary>
    /// <paramref name="lines"/> of mrkdwn within <paramref name="room"/> characters once joined by line breaks, none
    /// longer than <paramref name="maxLine"/>: the longest lines are shortened first (<see cref="Cut"/>), each to an equal
    /// share of the room the shorter ones leave, so a short line is never cut. Only the <see cref="LineParts.Text"/> of
    /// each line is shortened, within the room its kept parts leave; when even those do not fit (with at least a "…" for
    /// each line), whole lines are shortened as text.
    /// </summary>
    public static IReadOnlyList<string> Shorten(IReadOnlyList<LineParts> lines, int room, int maxLine)
    {
        if (!KeepsWhole(lines, room, maxLine))
        {
            lines = [.. lines.Select(line => LineParts.Plain(line.Kept + line.Text + line.KeptAfter))];
        }

        // Each line but the first costs a line break as well.
        room -= Math.Max(lines.Count - 1, 0) + lines.Sum(line => line.KeptLength);
        var limits = new int[lines.Count];
        var left = lines.Count;
        foreach (var i in Enumerable.Range(0, lines.Count).OrderBy(i => lines[i].Text.Length))
        {
            limits[i] = Math.Min(Math.Min(lines[i].Text.Length, maxLine - lines[i].KeptLength), Math.Max(room / left, 1));
            room -= limits[i];
            left--;
        }

        return [.. lines.Select((line, i) => line.Kept + Cut(line.Text, limits[i]) + line.KeptAfter)];
    }

    /// <summary>
    /// Whether <see cref="Shorten"/> keeps the <see cref="LineParts.Kept"/> and <see cref="LineParts.KeptAfter"/> parts of
    /// <paramref name="lines"/> whole: they fit in <paramref name="room"/>, with a line break between lines and at least
    /// a "…" of each line's text, and each in <paramref name="maxLine"/>.
    /// </summary>
    public static bool KeepsWhole(IReadOnlyList<LineParts> lines, int room, int maxLine) =>
        lines.Sum(line => line.KeptLength + 1) <= room - Math.Max(lines.Count - 1, 0) && lines.All(line => line.KeptLength < maxLine);

    /// <summary>
    /// <paramref name="mrkdwn"/> in at most <paramref name="max"/> characters, ending with "…" when shortened. It is cut
    /// before an escape (&amp;amp;) or a link (&lt;url|label&gt;) it would split, and never between the two halves of a
    /// surrogate pair: what is left is still mrkdwn Slack shows as written.
    /// </summary>
    public static string Cut(string mrkdwn, int max)
    {
        if (mrkdwn.Length <= max)
        {
            return mrkdwn;
        }

        var end = Math.Max(max - 1, 0);
        if (end > 0 && mrkdwn.LastIndexOf('&', end - 1) is var amp and >= 0 && mrkdwn.IndexOf(';', amp, end - amp) < 0)
        {
            end = amp;
        }

        if (end > 0 && mrkdwn.LastIndexOf('<', end - 1) is var open and >= 0 && mrkdwn.IndexOf('>', open, end - open) < 0)
        {
            end = open;
        }

        return string.Concat(mrkdwn.AsSpan(0, TextCut.End(mrkdwn, end)), "…");
    }

    /// <summary>
    /// A message's text, <paramref name="head"/>, <paramref name="quoted"/> and <paramref name="tail"/>, within
    /// <paramref name="max"/> characters (<see cref="BlockKitLimits.Text"/>): past it, what is quoted (a reason someone
    /// typed, an action's detail) is cut (<see cref="Cut"/>) and followed by the link to the deployment, whose page has
    /// it whole.
    /// </summary>
    public static string Fit(string head, string quoted, string tail, string link, int max = BlockKitLimits.Text)
    {
        if (head.Length + quoted.Length + tail.Length <= max)
        {
            return head + quoted + tail;
        }

        var whole = $" (shortened: all of it at {link})";
        return head + Cut(quoted, max - head.Length - whole.Length - tail.Length) + whole + tail;
    }

    /// <summary>
    /// A name someone typed (a deployment id, a service) that an answer repeats, escaped and cut (<see cref="Cut"/>) past
    /// the longest any deployment's can be once escaped (<see cref="WebhookRequestParser.MaxFieldLength"/>, every
    /// character an '&amp;'): a slash command or button may carry 64 KiB, which escaped would pass even the 40,000
    /// characters Slack cuts a text at.
    /// </summary>
    public static string Typed(string name) => Cut(Escape(name), WebhookRequestParser.MaxFieldLength * "&amp;".Length);

    /// <summary>&amp;, &lt; and &gt; are the three characters Slack asks to escape in mrkdwn.</summary>
    public static string Escape(string text) =>
        text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);

    public static string Who(string? actor) =>
        actor is { Length: > 1 } && actor[0] is 'U' or 'W' && actor.All(char.IsAsciiLetterOrDigit) ? $"<@{actor}>" : Escape(actor ?? "someone");

    private static MetricEvidence Evidence(JsonElement e) => new(
        Text(e, "metric") ?? Text(e, "name") ?? "metric",
        NumberOf(e, "value"),
        NumberOf(e, "baseline"),
        NumberOf(e, "threshold"),
        Text(e, "verdict") ?? Text(e, "to"),
        Text(e, "explanation"),
        Text(e, "shown"));

    private static string? Text(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value)
            ? value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Null or JsonValueKind.Undefined => null,
                _ => value.GetRawText(),
            }
            : null;

    private static double? NumberOf(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;

    /// <summary>
    /// A measured value with four significant digits ("0.04988", not "0.049878345498783457"; "0.00000012", not "1.2E-07"),
    /// where its metric's unit is not known; the inbox shows them so too.
    /// </summary>
    public static string Number(double? value) => value is { } known ? MetricValues.Significant(known, 4) : "n/a";

    public static string Duration(TimeSpan span) =>
        span.TotalHours >= 1 && span.Minutes == 0 ? $"{span.TotalHours:0} h" : $"{span.TotalMinutes:0} min";
}

/// <summary>
/// A line of mrkdwn whose <see cref="Text"/>, what someone typed (a version, an environment, an initiator), may be
/// shortened (<see cref="SlackMessages.Shorten(IReadOnlyList{LineParts}, int, int)"/>), between <see cref="Kept"/> and
/// <see cref="KeptAfter"/>, which are never cut: the link to the deployment, the one thing that lets the reader see
/// everything, and what the line says of it (its state).
/// </summary>
public sealed record LineParts(string Kept, string Text, string KeptAfter = "")
{
    public int KeptLength => Kept.Length + KeptAfter.Length;

    /// <summary>A line all of which may be shortened.</summary>
    public static LineParts Plain(string text) => new("", text);
}
