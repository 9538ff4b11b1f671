using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Slack;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Slack;

public sealed class SlackMessagesTests
{
    [Theory]
    [InlineData("a &amp; b", 6, "a …")]
    [InlineData("see <https://x.example/d|d> now", 20, "see …")]
    [InlineData("ok &lt;x&gt; and more", 13, "ok &lt;x&gt;…")]
    [InlineData("short", 5, "short")]
    public void Cut_NeverSplitsAnEscapeOrALink(string mrkdwn, int max, string expected)
    {
        var cut = SlackMessages.Cut(mrkdwn, max);

        Assert.Equal(expected, cut);
        Assert.True(cut.Length <= max);
    }

    [Fact]
    public void Cut_NeverSplitsASurrogatePair()
    {
        Assert.Equal("ab…", SlackMessages.Cut("ab\U0001F600cd", 4));
    }

    [Fact]
    public void Fit_AtEveryLength_EscapesBeforeTheCut_NeverSplitsAnEscapeALinkOrASurrogatePair()
    {
        // What is quoted is escaped, then cut: the limit holds for the escaped text, whatever character the cut meets.
        const string Typed = "a&b<c>\U0001F600&&<<>>\U0001F680x&\U0001F600>";
        var quoted = SlackMessages.Escape(string.Concat(Enumerable.Repeat(Typed, 40)));
        const string Head = "alice decided *stop*: ";
        const string Link = "<https://rolloutgate.example/api/v1/deployments/d|d>";
        var whole = $" (shortened: all of it at {Link})";

        for (var max = Head.Length + whole.Length + 1; max < Head.Length + quoted.Length; max++)
        {
            var fitted = SlackMessages.Fit(Head, quoted, "", Link, max);

            Assert.InRange(fitted.Length, max - 10, max);
            Assert.StartsWith(Head, fitted, StringComparison.Ordinal);
            Assert.EndsWith("…" + whole, fitted, StringComparison.Ordinal);
            var cut = fitted[Head.Length..^(whole.Length + 1)];
            Assert.StartsWith(cut, quoted, StringComparison.Ordinal);
            Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", cut);
            Assert.False(cut.Length > 0 && char.IsHighSurrogate(cut[^1]), $"a surrogate pair split at {max}");
        }
    }

    [Fact]
    public void Notifications_LongFieldsFullOfMarkup_TheirTextKeepsWithinSlacksLengthAndEndsWithTheLink()
    {
        // Service, version and id each within the webhook's 256 characters, but escaped ('&' is "&amp;", in the link's
        // address "%26") a notification's text came to some 4,700 characters, past the 4,000 Slack asks for.
        var markup = new string('&', 256);
        var deployment = new DeploymentRow { Id = markup, Service = markup, Environment = "production", Version = markup, State = "regressed" };
        var runbook = RunbookParser.Parse(TestRunbooks.Minimal(), "checkout.yaml").Runbook!;
        var link = SlackMessages.LinkTo("https://rolloutgate.example", markup);

        string[] texts =
        [
            SlackMessages.VerdictChanged("C1", deployment, """{"metric": "p95-latency", "verdict": "regressed"}""", "https://rolloutgate.example").Text,
            SlackMessages.Recommendation("C1", deployment, runbook, [SlackTestService.P95Regressed], "https://rolloutgate.example").Text,
        ];

        Assert.All(texts, text =>
        {
            Assert.InRange(text.Length, BlockKitLimits.Text - 10, BlockKitLimits.Text);
            Assert.StartsWith("&amp;&amp;", text, StringComparison.Ordinal);
            Assert.EndsWith($" · {link}", text, StringComparison.Ordinal);
            Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", text);
        });
    }

    [Fact]
    public void Blocks_LongFieldsFullOfMarkup_KeepTheLinkToTheDeploymentWhole()
    {
        // Every field 256 '&' (1,280 characters escaped, the link's address 815): the recommendation's headline, service,
        // version and link, came to 3,400 characters, past a section's 3,000, and was cut before the link.
        var markup = new string('&', 256);
        var deployment = new DeploymentRow
        {
            Id = markup, Service = markup, Environment = markup, Version = markup, PreviousVersion = markup, Initiator = markup, State = "regressed",
        };
        var runbook = RunbookParser.Parse(TestRunbooks.Minimal(), "checkout.yaml").Runbook!;
        const string PublicUrl = "https://rolloutgate.example";
        var link = SlackMessages.LinkTo(PublicUrl, markup);
        // Forty metrics whose explanations quote much: the verdict's headline, its link the longest line, had a share of the rest's room.
        var evidence = Enumerable.Range(0, 40).Select(i => SlackTestService.P95Regressed with { Metric = $"m{i}", Explanation = new string('<', 500) }).ToList();
        var data = System.Text.Json.JsonSerializer.Serialize(new { metrics = evidence.Select(e => new { metric = e.Metric, verdict = e.Verdict, explanation = e.Explanation }) });

        OutboxMessage[] messages =
        [
            SlackMessages.Root(deployment, runbook, PublicUrl),
            SlackMessages.VerdictChanged("C1", deployment, data, PublicUrl),
            SlackMessages.Recommendation("C1", deployment, runbook, evidence, PublicUrl),
        ];

        Assert.All(messages, message =>
        {
            var sections = message.Blocks!.OfType<SectionBlock>().Select(s => s.Text.Text).ToList();
            Assert.All(sections, s => Assert.InRange(s.Length, 1, BlockKitLimits.SectionText));
            var all = string.Join("\n", sections);
            Assert.InRange(all.Length, 1, BlockKitLimits.MessageText);
            Assert.Contains(link, all, StringComparison.Ordinal);
            Assert.DoesNotMatch("&(?!amp;|lt;|gt;)", all);
        });
        Assert.StartsWith($"*&amp;&amp;", messages[2].Blocks!.OfType<SectionBlock>().First().Text.Text, StringComparison.Ordinal);
        Assert.EndsWith($"…` regressed* · {link}", messages[2].Blocks!.OfType<SectionBlock>().First().Text.Text.Split('\n')[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Shorten_KeptPartsWhole_TheTextBetweenShortened_AndWhenEvenTheyDoNotFit_WholeLinesAsBefore()
    {
        LineParts[] lines = [new("<link> ", new string('v', 100), ": *watching*"), LineParts.Plain(new string('d', 100))];

        Assert.Equal(["<link> " + new string('v', 19) + "…: *watching*", new string('d', 19) + "…"], SlackMessages.Shorten(lines, 60, 60));
        // No room for the link: the line is cut before it, as any line is.
        Assert.Equal(["…", "dddd…"], SlackMessages.Shorten(lines, 12, 60));
    }

    [Fact]
    public void Sections_ShortLinesKeptWhole_LongOnesShareTheRoomEvenly()
    {
        var evidence = Enumerable.Range(0, 10).Select(i => new string((char)('a' + i), 2_000)).ToList();
        string[] lines = ["*headline*", .. evidence, "the time-out", new string('z', 5_000)];

        var sections = SlackMessages.Sections(lines).Select(s => s.Text.Text).ToList();

        Assert.All(sections, s => Assert.InRange(s.Length, 1, BlockKitLimits.SectionText));
        var all = string.Join("\n", sections);
        Assert.StartsWith("*headline*\n", all, StringComparison.Ordinal);
        Assert.Contains("\nthe time-out\n", all, StringComparison.Ordinal);
        Assert.InRange(all.Length, BlockKitLimits.MessageText - 20, BlockKitLimits.MessageText);
        var shares = all.Split('\n').Where(line => line.EndsWith('…')).Select(line => line.Length).ToList();
        Assert.Equal(11, shares.Count);
        Assert.True(shares.Max() - shares.Min() <= 1, string.Join(", ", shares));
    }

    [Fact]
    public void RollbackAction_FailedWithALongDetail_KeepsTheQuestionTheLinkAndTheButtons()
    {
        var data = System.Text.Json.JsonSerializer.Serialize(new
        {
            action = "webhook", outcome = "failed", detail = "answered 500: " + string.Concat(Enumerable.Repeat("<html> & ", 1_000)),
        });

        var message = SlackMessages.RollbackAction("C0DECIDE01", "gh-1", "rolling-back", data, "https://rolloutgate.example");

        Assert.InRange(message.Text.Length, 1, BlockKitLimits.SectionText);
        Assert.StartsWith("Rollback action webhook: *failed* (answered 500: &lt;html&gt; &amp; ", message.Text, StringComparison.Ordinal);
        Assert.EndsWith(
            "… (shortened: all of it at <https://rolloutgate.example/api/v1/deployments/gh-1|gh-1>)) Traffic may still go to the new version. "
            + "Retry the rollback, or stop the automation and roll back by other means.", message.Text, StringComparison.Ordinal);
        var section = Assert.IsType<SectionBlock>(message.Blocks![0]);
        Assert.Equal(message.Text, section.Text.Text);
        Assert.Equal(2, Assert.IsType<ActionsBlock>(message.Blocks[1]).Elements.Count);
    }

    [Theory]
    [InlineData(DeploymentDecisions.NoActionConfigured)]
    [InlineData(DeploymentDecisions.UnreadableRunbook)]
    public void RollbackAction_FailedSoThatARetryCannotHelp_OffersNoRetryButton(string action)
    {
        // Deciding the rollback again is refused for these (DeploymentDecisions.CannotRetry): a button would only be refused.
        var data = System.Text.Json.JsonSerializer.Serialize(new { action, outcome = "failed", detail = "roll back by hand" });

        var message = SlackMessages.RollbackAction("C0DECIDE01", "gh-1", "rolling-back", data, "https://rolloutgate.example");

        Assert.Null(message.Blocks);
        Assert.StartsWith($"Rollback action {action}: *failed* (roll back by hand)", message.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, "alice decided *stop* (via http)")]
    [InlineData("  ", "alice decided *stop* (via http)")]
    [InlineData("db <migration> & more", "alice decided *stop* (via http): db &lt;migration&gt; &amp; more")]
    public void Decision_ShowsAReasonGiven_AndNoneForABlankOne(string? reason, string expected)
    {
        var data = System.Text.Json.JsonSerializer.Serialize(new { kind = "stop", reason, source = "http" });

        Assert.Equal(expected, SlackMessages.Decision("C0DECIDE01", "gh-1", "alice", data, "https://rolloutgate.example").Text);
    }

    /// <summary>
    /// Evidence whose metric's unit is not known (an evaluation recorded without its figures, the inbox's fallback) reads
    /// as plain numbers in fixed notation: a cost per request was "1.2E-07 (baseline 1E-07, threshold 1.15E-07)".
    /// </summary>
    [Fact]
    public void Figures_WithoutTheUnit_AreFixedNotationWithFourSignificantDigits()
    {
        Assert.Equal("0.00000012 (baseline 0.0000001, threshold 0.000000115)", new MetricEvidence("cost-per-request", 1.2e-7, 1e-7, 1.15e-7, "regressed", null).Figures);
        Assert.Equal("0.04988 (baseline 0.002, threshold n/a)", new MetricEvidence("error-rate", 0.049878345498783457, 0.0020004206048186120, null, "regressed", null).Figures);
    }
}
