using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Runbooks;

/// <summary>Text cut to a length, never between the two halves of a surrogate pair.</summary>
public sealed class TextCutTests
{
    [Theory]
    [InlineData("abcdef", 4, "abcd…")]
    [InlineData("abcd", 4, "abcd")]
    [InlineData("abc\U0001F600def", 4, "abc…")]
    [InlineData("abc\U0001F600def", 5, "abc\U0001F600…")]
    [InlineData("\U0001F600", 1, "…")]
    public void Shorten_NeverHalfAnEmoji(string text, int max, string shortened)
    {
        Assert.Equal(shortened, TextCut.Shorten(text, max));
    }

    [Theory]
    [InlineData("abc\U0001F600", 4, 3)]
    [InlineData("abc\U0001F600", 5, 5)]
    [InlineData("abc", 10, 3)]
    [InlineData("abc", -1, 0)]
    public void End_BeforeAnEmojiItWouldSplit_WithinTheText(string text, int max, int end)
    {
        Assert.Equal(end, TextCut.End(text, max));
    }
}
