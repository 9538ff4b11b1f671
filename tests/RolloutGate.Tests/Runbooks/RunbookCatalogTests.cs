using Microsoft.Extensions.Time.Testing;
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
}
