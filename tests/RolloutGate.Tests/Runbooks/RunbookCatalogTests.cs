using System.Collections.Immutable;
using Microsoft.Extensions.Time.Testing;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Runbooks;

public sealed class RunbookCatalogTests
{
    private static DeploymentRow DeployedUnder(int version) => new()
    {
        Id = $"dep-v{version}",
        Service = "checkout",
        Environment = "production",
        State = "watching",
        RunbookVersionId = version,
        RunbookVersion = new RunbookVersionRow
        {
            Id = version,
            Name = "checkout",
            Version = version,
            Sha256 = new string('0', 64),
            Content = TestRunbooks.Minimal(version: version),
            FilePath = "checkout.yaml",
        },
    };

    [Fact]
    public void VersionOf_StoredVersionsNoLongerInForce_ThoseUnusedForAnHourAreForgottenWhenAnotherIsParsed()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var catalog = new RunbookCatalog(time);
        Assert.Equal(1, catalog.VersionOf(DeployedUnder(1)).Version);
        Assert.Equal(2, catalog.VersionOf(DeployedUnder(2)).Version);

        // Version 2 is still in use (its watch runs, its dashboard page is read); version 1 is not.
        time.Advance(TimeSpan.FromMinutes(40));
        Assert.Equal(2, catalog.VersionOf(DeployedUnder(2)).Version);
        time.Advance(TimeSpan.FromMinutes(40));
        Assert.Equal(3, catalog.VersionOf(DeployedUnder(3)).Version);
        Assert.Equal([2L, 3L], catalog.CachedVersions);

        // Forgotten is not lost: a deployment of version 1 read again gets its version parsed again.
        Assert.Equal(1, catalog.VersionOf(DeployedUnder(1)).Version);
        Assert.Equal([1L, 2L, 3L], catalog.CachedVersions);
    }

    [Fact]
    public void VersionOf_AVersionInForce_IsTheLoadedRunbookUntilAScanNoLongerHasIt()
    {
        var catalog = new RunbookCatalog(TimeProvider.System);
        // Many files in force, as a service with a thousand runbooks has: the deployment's version is found among them.
        var loaded = Enumerable.Range(1, 50).ToImmutableDictionary(
            v => $"svc-{v}.yaml",
            v => new LoadedRunbook(RunbookParser.Parse(TestRunbooks.Minimal(version: v), $"svc-{v}.yaml").Runbook!, v, new string('0', 64), $"svc-{v}.yaml"));
        catalog.Publish(loaded, missingFolder: null);

        Assert.Same(loaded["svc-7.yaml"].Runbook, catalog.VersionOf(DeployedUnder(7)));
        Assert.Empty(catalog.CachedVersions);

        // The file changed (a scan replaced version 7): the deployment keeps its stored version, parsed from the database.
        catalog.Publish(loaded.Remove("svc-7.yaml"), missingFolder: null);
        var stored = catalog.VersionOf(DeployedUnder(7));
        Assert.NotSame(loaded["svc-7.yaml"].Runbook, stored);
        Assert.Equal(7, stored.Version);
        Assert.Equal([7L], catalog.CachedVersions);
    }
}
