using Microsoft.Extensions.DependencyInjection;
using Quartz;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// How Quartz fires the sweep job. The job disallows concurrent execution, which only the job store's
/// <c>TRIGGER_ACCESS</c> lock decides; a lock-free firing round (Quartz's default since 4.6) finds that in its candidate
/// read, throws a RoundNeedsLockException, rolls its transaction back and runs again under the lock. With them on, that
/// was nearly every fire of the sweep (9 in 10 here; in the soak a rolled-back transaction and about 6 first-chance
/// exceptions a second). So the service turns lock-free rounds off: every round is locked from the start, as 4.5's were
/// and as the escalated ones end anyway. On a new database the first round then takes the lock right away, so the sweep
/// is stored before the scheduler starts: the lock row is made by the store of the sweep, not by both at once.
/// </summary>
public sealed class SweepSchedulingTests
{
    /// <summary>Quartz's line (Debug) for each fire of the sweep.</summary>
    private static readonly string Fired = $"Calling Execute on job {WatchSweepJob.Key}";

    [Fact]
    public async Task Sweep_FiredRepeatedly_NoRoundBegunWithoutTheLockAndRunAgainUnderIt()
    {
        // Quartz's own lines down to Debug (appsettings.json keeps them at Warning): the test reads them.
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", TestRunbooks.Minimal())], new Dictionary<string, string?> { ["Logging:LogLevel:Quartz"] = "Debug" });

        await SlackTestService.EventuallyAsync(
            () => Task.FromResult(service.Host.Logs.Lines.Count(line => line.Contains(Fired, StringComparison.Ordinal)) >= 5), "five sweeps fired", 60);

        var escalated = service.Host.Logs.Lines.Where(line => line.Contains("TRIGGER_ACCESS", StringComparison.Ordinal)
            && (line.Contains("Firing round takes", StringComparison.Ordinal) || line.Contains("run again under", StringComparison.Ordinal))).ToList();
        Assert.True(escalated.Count == 0, $"{escalated.Count} firing rounds run again under the lock, the first: {escalated.FirstOrDefault()}");
    }

    /// <summary>
    /// Started beside the storing of the sweep, the first firing round (locked from the start) found the lock row being
    /// inserted by it, waited for that insert, inserted nothing and tried again a second later (Quartz's lock retry): the
    /// first sweep a second late, and a host stopped within that second fired it on its way out.
    /// </summary>
    [Fact]
    public async Task NewDatabase_TheSweepIsStoredBeforeTheSchedulerStarts_SoOnlyOneTransactionMakesTheLockRow()
    {
        var events = new SchedulerEvents();
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", TestRunbooks.Minimal())], new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Quartz"] = "Debug",
                // The job store's lock handler is the service's own (JobStoreLockHandler): it says when it makes a lock row.
                [$"Logging:LogLevel:{typeof(JobStoreLockHandler).FullName}"] = "Debug",
            },
            services => services.AddSingleton<ISchedulerListener>(events));

        await SlackTestService.EventuallyAsync(
            () => Task.FromResult(service.Host.Logs.Lines.Any(line => line.Contains(Fired, StringComparison.Ordinal))), "the first sweep fired", 60);

        Assert.Equal(["job added: watch-sweep.sweep", "scheduler starting"], events.Seen);
        var made = service.Host.Logs.Lines.Where(line => line.Contains("Inserting new lock row for lock: 'TRIGGER_ACCESS'", StringComparison.Ordinal)).ToList();
        Assert.True(made.Count == 1, $"{made.Count} transactions went to make the lock row: {string.Join(" | ", made)}");
    }

    /// <summary>What the scheduler tells its listeners of its start and of the jobs it stores, in order.</summary>
    private sealed class SchedulerEvents : ISchedulerListener
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> seen = new();

        public string[] Seen => [.. seen];

        public ValueTask JobAdded(IScheduler scheduler, IJobDetail jobDetail, CancellationToken cancellationToken = default)
        {
            seen.Enqueue($"job added: {jobDetail.Key}");
            return ValueTask.CompletedTask;
        }

        public ValueTask SchedulerStarting(IScheduler scheduler, CancellationToken cancellationToken = default)
        {
            seen.Enqueue("scheduler starting");
            return ValueTask.CompletedTask;
        }
    }
}
