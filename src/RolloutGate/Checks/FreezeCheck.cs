using RolloutGate.Core.Checks;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Checks;

/// <summary>Fails inside a change-freeze window (<see cref="FreezeCalendar"/>), saying which and until when.</summary>
internal sealed class FreezeCheck : IPreDeployCheck
{
    public string Kind => "freeze";

    public Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken)
    {
        var spec = check.Freeze ?? throw new ArgumentException($"check '{check.Name}' is not a freeze check", nameof(check));
        var match = FreezeCalendar.Find(spec, context.At);
        if (match is null)
        {
            var local = TimeZoneInfo.ConvertTime(context.At, FreezeCalendar.ZoneById(spec.TimeZone));
            return Task.FromResult(CheckResult.Pass(check.Name, $"no change freeze at {FreezeCalendar.FormatLocal(local)} ({spec.TimeZone})"));
        }

        var zone = match.Reason is null ? spec.TimeZone : $"{spec.TimeZone}: {match.Reason}";
        return Task.FromResult(CheckResult.Fail(
            check.Name, $"change freeze '{match.Window}' ({zone}) until {FreezeCalendar.FormatLocal(match.Until)}"));
    }
}
