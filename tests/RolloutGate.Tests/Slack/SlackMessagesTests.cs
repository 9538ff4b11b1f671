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
}
