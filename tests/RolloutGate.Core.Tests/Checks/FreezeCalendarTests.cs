using RolloutGate.Core.Checks;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Tests.Checks;

/// <summary>
/// Europe/Berlin changes to CEST (+02:00) at 02:00 on 2026-03-29, skipping 02:00-03:00, and back to CET (+01:00)
/// at 03:00 on 2026-10-25, repeating 02:00-03:00. Both are Sundays, inside a "Fri 16:00 - Mon 08:00" freeze.
/// </summary>
public sealed class FreezeCalendarTests
{
    private const string Berlin = "Europe/Berlin";
    private const string Weekend = "Fri 16:00 - Mon 08:00";

    private static FreezeMatch? Find(string at, params string[] windows) =>
        FreezeCalendar.Find(new FreezeCheckSpec(Berlin, windows, []), DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture));

    private static DateTimeOffset Time(string text) => DateTimeOffset.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("2026-03-27T15:59:59+01:00")] // Friday before the window, CET
    [InlineData("2026-03-30T08:00:00+02:00")] // Monday end, CEST: exclusive
    [InlineData("2026-03-30T06:30:00Z")] // 08:30 CEST; a fixed +01:00 would read 07:30 and still freeze
    [InlineData("2026-10-23T15:59:00+02:00")] // Friday before the window, CEST
    [InlineData("2026-10-26T08:00:00+01:00")] // Monday end, CET: exclusive
    [InlineData("2026-10-26T07:30:00Z")] // 08:30 CET
    public void Find_OutsideWeekendAroundDstChange_ReturnsNull(string at) =>
        Assert.Null(Find(at, Weekend));

    [Theory]
    [InlineData("2026-03-27T16:00:00+01:00", "2026-03-30T08:00:00+02:00")] // start, CET
    [InlineData("2026-03-29T01:59:00+01:00", "2026-03-30T08:00:00+02:00")] // just before the jump
    [InlineData("2026-03-29T03:00:00+02:00", "2026-03-30T08:00:00+02:00")] // just after it
    [InlineData("2026-03-30T07:59:00+02:00", "2026-03-30T08:00:00+02:00")] // last minute, CEST
    [InlineData("2026-10-23T16:00:00+02:00", "2026-10-26T08:00:00+01:00")] // start, CEST
    [InlineData("2026-10-25T02:30:00+02:00", "2026-10-26T08:00:00+01:00")] // first 02:30
    [InlineData("2026-10-25T02:30:00+01:00", "2026-10-26T08:00:00+01:00")] // second 02:30
    [InlineData("2026-10-26T06:30:00Z", "2026-10-26T08:00:00+01:00")] // 07:30 CET; a fixed +02:00 would read 08:30
    public void Find_InsideWeekendAroundDstChange_EndsMondayAtEightLocal(string at, string until)
    {
        var match = Find(at, Weekend);

        Assert.NotNull(match);
        Assert.Equal(Weekend, match.Window);
        Assert.Equal(Time(until), match.Until);
        Assert.Equal(Time(until).Offset, match.Until.Offset);
    }

    [Fact]
    public void Find_ContractExample_FormatsUntilWithOffset()
    {
        var match = Find("2026-11-21T10:00:00Z", Weekend);

        Assert.NotNull(match);
        Assert.Equal("2026-11-23T08:00+01:00", FreezeCalendar.FormatLocal(match.Until));
    }

    [Theory]
    [InlineData("2026-03-29T00:59:59Z", false)] // 01:59:59 CET
    [InlineData("2026-03-29T01:00:00Z", true)] // 03:00 CEST: the clocks jumped over 02:30, the freeze starts now
    public void Find_StartInSkippedHour_StartsWhenClocksJump(string at, bool inside) =>
        Assert.Equal(inside, Find(at, "Sun 02:30 - Sun 05:00") is not null);

    [Fact]
    public void Find_EndInSkippedHour_EndsWhenClocksJump()
    {
        var match = Find("2026-03-29T00:30:00Z", "Sat 20:00 - Sun 02:30");

        Assert.NotNull(match);
        Assert.Equal(Time("2026-03-29T03:00:00+02:00"), match.Until);
        Assert.Null(Find("2026-03-29T01:00:00Z", "Sat 20:00 - Sun 02:30"));
    }

    [Theory]
    [InlineData("2026-10-25T00:29:00Z", false)] // 02:29 CEST
    [InlineData("2026-10-25T00:30:00Z", true)] // 02:30 CEST, the first 02:30: a start takes the earlier
    public void Find_StartInRepeatedHour_StartsAtFirstOccurrence(string at, bool inside) =>
        Assert.Equal(inside, Find(at, "Sun 02:30 - Sun 06:00") is not null);

    [Theory]
    [InlineData("2026-10-25T00:45:00Z", true)] // 02:45 CEST, past the first 02:30
    [InlineData("2026-10-25T01:29:00Z", true)] // 02:29 CET
    [InlineData("2026-10-25T01:30:00Z", false)] // 02:30 CET, the second 02:30: an end takes the later
    public void Find_EndInRepeatedHour_EndsAtSecondOccurrence(string at, bool inside)
    {
        var match = Find(at, "Sat 20:00 - Sun 02:30");

        Assert.Equal(inside, match is not null);
        if (match is not null)
        {
            Assert.Equal(Time("2026-10-25T02:30:00+01:00"), match.Until);
        }
    }

    [Theory]
    [InlineData("2026-11-16T09:30:00+01:00", true)] // Monday
    [InlineData("2026-11-17T09:30:00+01:00", false)] // Tuesday
    [InlineData("2026-11-16T10:00:00+01:00", false)]
    public void Find_WindowWithinOneDay_MatchesOnlyThatDay(string at, bool inside) =>
        Assert.Equal(inside, Find(at, "Mon 09:00 - Mon 10:00") is not null);

    [Fact]
    public void Find_WindowOverWeekBoundary_MatchesOnMondayMorning()
    {
        var match = Find("2026-11-16T01:00:00+01:00", "Sun 22:00 - Mon 02:00");

        Assert.NotNull(match);
        Assert.Equal(Time("2026-11-16T02:00:00+01:00"), match.Until);
    }

    [Fact]
    public void Find_DatedWindow_ReturnsReasonAndLocalEnd()
    {
        var spec = new FreezeCheckSpec(Berlin, [], [new DatedWindow(new DateTime(2026, 12, 21, 0, 0, 0), new DateTime(2027, 1, 4, 8, 0, 0), "year end")]);

        var match = FreezeCalendar.Find(spec, Time("2026-12-24T12:00:00Z"));

        Assert.NotNull(match);
        Assert.Equal("2026-12-21 00:00 - 2027-01-04 08:00", match.Window);
        Assert.Equal("year end", match.Reason);
        Assert.Equal(Time("2027-01-04T08:00:00+01:00"), match.Until);
        Assert.Null(FreezeCalendar.Find(spec, Time("2027-01-04T07:00:00Z")));
        Assert.Null(FreezeCalendar.Find(spec, Time("2026-12-20T22:59:59Z")));
        Assert.NotNull(FreezeCalendar.Find(spec, Time("2026-12-20T23:00:00Z")));
    }

    [Fact]
    public void Find_DatedWindowOverSpringForward_EndsInSummerTime()
    {
        var spec = new FreezeCheckSpec(Berlin, [], [new DatedWindow(new DateTime(2026, 3, 28, 0, 0, 0), new DateTime(2026, 3, 30, 0, 0, 0), null)]);

        Assert.Equal(Time("2026-03-30T00:00:00+02:00"), FreezeCalendar.Find(spec, Time("2026-03-29T12:00:00Z"))?.Until);
        Assert.Null(FreezeCalendar.Find(spec, Time("2026-03-29T22:00:00Z")));
    }

    [Fact]
    public void Find_DatedWindowTouchingWeekend_EndsWhenTheLastWindowEnds()
    {
        var spec = new FreezeCheckSpec(Berlin, [Weekend], [new DatedWindow(new DateTime(2026, 11, 20, 12, 0, 0), new DateTime(2026, 11, 20, 16, 0, 0), "release party")]);

        var match = FreezeCalendar.Find(spec, Time("2026-11-20T13:00:00+01:00"));

        Assert.NotNull(match);
        Assert.Equal("release party", match.Reason);
        Assert.Equal(Time("2026-11-23T08:00:00+01:00"), match.Until);
    }

    [Theory]
    [InlineData("Fri 16:00 - Mon 08:00", DayOfWeek.Friday, 16, 0, DayOfWeek.Monday, 8, 0)]
    [InlineData("Sat 00:00-Sun 23:59", DayOfWeek.Saturday, 0, 0, DayOfWeek.Sunday, 23, 59)]
    public void Parse_ValidWindow_GivesDaysAndTimes(string text, DayOfWeek startDay, int startHour, int startMinute, DayOfWeek endDay, int endHour, int endMinute)
    {
        var window = WeeklyWindow.Parse(text);

        Assert.Equal(new WeeklyWindow(startDay, new TimeOnly(startHour, startMinute), endDay, new TimeOnly(endHour, endMinute)), window);
    }

    [Theory]
    [InlineData("Fri 16:00", "not a weekly window")]
    [InlineData("Fry 16:00 - Mon 08:00", "days are")]
    [InlineData("Friday 16:00 - Mon 08:00", "not a weekly window")]
    [InlineData("fri 16:00 - Mon 08:00", "days are")]
    [InlineData("Fri 8:00 - Mon 08:00", "not a weekly window")]
    [InlineData("Fri 25:00 - Mon 08:00", "24-hour")]
    [InlineData("Mon 08:00 - Mon 08:00", "another time")]
    public void Parse_InvalidWindow_SaysWhy(string text, string reason)
    {
        var exception = Assert.Throws<FormatException>(() => WeeklyWindow.Parse(text));

        Assert.Contains(reason, exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Find_UnknownZone_Throws() =>
        Assert.Throws<ArgumentException>(() => FreezeCalendar.Find(new FreezeCheckSpec("Mars/Olympus", [Weekend], []), Time("2026-11-20T13:00:00Z")));
}
