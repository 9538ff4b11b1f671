using RolloutGate.Slack;

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
    [InlineData(null, "alice decided *stop* (via http)")]
    [InlineData("  ", "alice decided *stop* (via http)")]
    [InlineData("db <migration> & more", "alice decided *stop* (via http): db &lt;migration&gt; &amp; more")]
    public void Decision_ShowsAReasonGiven_AndNoneForABlankOne(string? reason, string expected)
    {
        var data = System.Text.Json.JsonSerializer.Serialize(new { kind = "stop", reason, source = "http" });

        Assert.Equal(expected, SlackMessages.Decision("C0DECIDE01", "gh-1", "alice", data, "https://rolloutgate.example").Text);
    }
}
