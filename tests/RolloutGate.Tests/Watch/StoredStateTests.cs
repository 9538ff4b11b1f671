using RolloutGate.Core.Analysis;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

public sealed class StoredStateTests
{
    public static TheoryData<DetectorState> States => new()
    {
        DetectorState.Initial,
        new DetectorState(3.25, new DateTimeOffset(2026, 11, 29, 10, 17, 0, TimeSpan.Zero), 2, 0, 1440,
            new DateTimeOffset(2026, 11, 30, 10, 16, 0, TimeSpan.Zero), 0.125, -4.0000000000000036, 1437),
        new DetectorState(0, null, 0, 31, 45, new DateTimeOffset(2026, 11, 29, 11, 0, 0, 123, TimeSpan.Zero), 1e-300, double.Epsilon, 0),
        new DetectorState(7.5, null, 0, 0, 60, new DateTimeOffset(2026, 11, 29, 11, 0, 0, TimeSpan.Zero), 2.25, 0, 58, 312, 58_000),
        new DetectorState(0, null, 0, 0, 9, new DateTimeOffset(2026, 11, 29, 11, 8, 0, TimeSpan.Zero), IntervalsBelowMin: 2),
        new DetectorState(0, null, 0, 3, 1440, new DateTimeOffset(2026, 11, 30, 10, 16, 0, TimeSpan.Zero), NoVerdictIntervals: 1428),
    };

    [Theory]
    [MemberData(nameof(States))]
    public void EncodedThenDecoded_TheSameState(DetectorState state)
    {
        var stored = StoredState.Encode(state);

        Assert.Equal(state, StoredState.Decode(stored));
        Assert.Equal(14, stored.Length);
    }

    [Fact]
    public void ShorterLayoutOfTheSameVersion_MissingFieldsReadAsTheirDefaults()
    {
        Assert.Equal(new DetectorState(1.5, null, 0, 0, 3, DateTimeOffset.FromUnixTimeMilliseconds(60_000)),
            StoredState.Decode([1, 1.5, double.NaN, 0, 0, 3, 60_000]));
        // Stored before the count of intervals below a min was appended: none below it yet.
        Assert.Equal(0, StoredState.Decode([1, 0, double.NaN, 0, 0, 3, 60_000, 0, 0, 0, 0, 0]).IntervalsBelowMin);
        // Stored before the count of intervals without a verdict was appended: it counts from there.
        Assert.Equal(0, StoredState.Decode([1, 0, double.NaN, 0, 0, 3, 60_000, 0, 0, 0, 0, 0, 0]).NoVerdictIntervals);
    }

    [Theory]
    [InlineData(new double[0], "the stored detector state is empty")]
    [InlineData(new double[] { 2, 0, double.NaN, 0, 0, 0, double.NaN, 0, 0, 0 }, "the stored detector state has layout 2 with 10 fields; this version reads layout 1")]
    [InlineData(new double[] { 1, 0, double.NaN }, "the stored detector state has layout 1 with 3 fields; this version reads layout 1")]
    public void OtherLayout_RefusedWithWhy(double[] stored, string why)
    {
        Assert.Equal(why, Assert.Throws<InvalidDataException>(() => StoredState.Decode(stored)).Message);
    }
}
