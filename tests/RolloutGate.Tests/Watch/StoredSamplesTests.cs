using RolloutGate.Core.Analysis;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

public sealed class StoredSamplesTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Decode_OfEncode_SameSamplesWithEveryCombinationOfMissingFields()
    {
        var samples = Enumerable.Range(0, 16).Select(i => new Observation(
            Start.AddMinutes(i).AddMilliseconds(i * 7),
            (i & 1) != 0 ? (i - 8) * 0.123456789e-3 : null,
            (i & 2) != 0 ? long.MaxValue - i : null,
            (i & 4) != 0 ? i : null)).ToList();
        samples.Add(new Observation(Start, double.Epsilon, 0, 0));
        samples.Add(new Observation(Start, 0.0, long.MinValue));

        var bytes = StoredSamples.Encode(samples);

        Assert.Equal(5 + 33 * samples.Count, bytes.Length);
        Assert.Equal(samples, StoredSamples.Decode(bytes));
        Assert.Empty(StoredSamples.Decode(StoredSamples.Encode([])));
    }

    [Fact]
    public void Decode_TimesWithAnOffset_TheSameInstantsInUtc()
    {
        var at = new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.FromHours(2));

        var decoded = Assert.Single(StoredSamples.Decode(StoredSamples.Encode([new Observation(at, 1.5)])));

        Assert.Equal(at, decoded.At);
        Assert.Equal(TimeSpan.Zero, decoded.At.Offset);
    }

    [Theory]
    [InlineData(new byte[0], "version byte missing")]
    [InlineData(new byte[] { 2, 0, 0, 0, 0 }, "version byte 2")]
    [InlineData(new byte[] { 1, 0, 0, 0, 1 }, "5 bytes cannot hold the 1 samples")]
    [InlineData(new byte[] { 1, 0xFF, 0xFF, 0xFF, 0xFF }, "cannot hold the -1 samples")]
    public void Decode_UnknownOrTruncated_SaysWhatIsWrong(byte[] bytes, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => StoredSamples.Decode(bytes));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
