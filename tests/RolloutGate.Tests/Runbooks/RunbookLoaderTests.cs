using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using RolloutGate.Runbooks;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Tests.Slack;

namespace RolloutGate.Tests.Runbooks;

public sealed class RunbookLoaderTests
{
    [Fact]
    public async Task Start_StoresEachRunbookVersionOnce_WithItsSha256()
    {
        await using var service = await TestService.StartAsync();
        await service.ReloadRunbooksAsync();

        Assert.Equal(1, await service.CountAsync("runbook_versions", "name = 'checkout' AND version = 1 AND length(sha256) = 64"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.loaded'"));
    }

    [Fact]
    public async Task Load_RunbookWithAWarning_IsInForceAndTheWarningLogged()
    {
        await using var service = await TestService.StartAsync(
            ("checkout.yaml", TestRunbooks.Minimal().Replace("baseline: 24h", "baseline: 10m", StringComparison.Ordinal)));
        await service.ReloadRunbooksAsync();

        Assert.Equal(1, await service.CountAsync("runbook_versions", "name = 'checkout' AND version = 1"));
        Assert.Contains(service.Host.Logs.Lines, line => line.Contains(
            "Runbook checkout v1 is in force, but: ", StringComparison.Ordinal)
            && line.Contains("checkout.yaml:19: watch.baseline (10m) holds 10 intervals of 1m, fewer than the 12", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Edit_WithoutANewVersionNumber_LoadedAndTheSameNumberForTwoContentsLogged()
    {
        await using var service = await TestService.StartAsync();
        await service.ReloadRunbooksAsync();

        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal().Replace("approvalTimeout: 15m", "approvalTimeout: 20m", StringComparison.Ordinal));
        await service.ReloadRunbooksAsync();
        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
        await service.ReloadRunbooksAsync();

        Assert.Equal(2, await service.CountAsync("runbook_versions", "name = 'checkout' AND version = 1"));
        Assert.Single(service.Host.Logs.Lines, line => line.Contains(
            "Runbook checkout v1 in ", StringComparison.Ordinal)
            && line.Contains("checkout.yaml changed (", StringComparison.Ordinal)
            && line.Contains(") without a new metadata.version: bump it with every change, so that v1 names one runbook", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Host.Logs.Lines, line => line.Contains("Runbook checkout v2 in", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Edit_Valid_NewVersionGovernsNewDeployments_OldDeploymentKeepsItsVersion()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "before-edit");

        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
        await service.ReloadRunbooksAsync();
        await service.Webhooks.SendEventAsync("cancelled", "before-edit");
        var after = await (await service.Webhooks.SendEventAsync("predeploy", "after-edit")).JsonAsync();

        Assert.Equal(2, after.GetProperty("runbook").GetProperty("version").GetInt32());
        Assert.Equal(1, await service.Database.ScalarAsync<int>(
            "SELECT v.version FROM deployments d JOIN runbook_versions v ON v.id = d.runbook_version_id WHERE d.id = 'before-edit'"));
        Assert.Equal(2, await service.CountAsync("runbook_versions"));
    }

    [Fact]
    public async Task Edit_Invalid_LastGoodVersionStaysInForce_AndTheRejectionIsAudited()
    {
        await using var service = await TestService.StartAsync();
        var broken = TestRunbooks.Minimal(version: 2).Replace("maxIncrease: 20%", "maxIncrase: 20%", StringComparison.Ordinal);

        service.Runbooks.Write("checkout.yaml", broken);
        await service.ReloadRunbooksAsync();
        var response = await service.Webhooks.SendEventAsync("predeploy", "during-bad-edit");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, (await response.JsonAsync()).GetProperty("runbook").GetProperty("version").GetInt32());
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.rejected'"));
        var rejection = await service.Database.ScalarAsync<string>("SELECT data FROM audit_events WHERE type = 'runbook.rejected'");
        Assert.Contains("maxIncrase", rejection, StringComparison.Ordinal);
        Assert.Contains("\"line\":", rejection, StringComparison.Ordinal);
        Assert.Contains("\"keptVersion\":1", rejection, StringComparison.Ordinal);

        await service.ReloadRunbooksAsync();
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.rejected'"));
    }

    [Fact]
    public async Task Edit_PickedUpWithoutRestart_ByThePoll()
    {
        await using var service = await TestService.StartAsync();
        _ = service.Client; // started

        service.Runbooks.Write("cart.yaml", TestRunbooks.Minimal("cart"));
        var status = HttpStatusCode.UnprocessableEntity;
        var attempt = 0;
        await SlackTestService.EventuallyAsync(async () =>
        {
            status = (await service.Webhooks.SendEventAsync("predeploy", $"cart-{attempt++}", service: "cart")).StatusCode;
            return status != HttpStatusCode.UnprocessableEntity;
        }, "cart's runbook picked up by the poll");

        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task TwoFilesForOneServiceAndEnvironment_SecondIsRejected()
    {
        await using var service = await TestService.StartAsync(
            ("a.yaml", TestRunbooks.Minimal("checkout")),
            ("b.yaml", TestRunbooks.Minimal("checkout").Replace("name: checkout", "name: checkout-two", StringComparison.Ordinal)));

        var rejection = await service.Database.ScalarAsync<string>("SELECT data FROM audit_events WHERE type = 'runbook.rejected'");

        Assert.Contains("already governed by", rejection, StringComparison.Ordinal);
        Assert.Contains("\"line\":7,", rejection, StringComparison.Ordinal); // spec.service
    }

    /// <summary>
    /// A file refused only because another file already governed its service takes over, in the running service, once
    /// that other file no longer does: removed (or renamed away), or edited to give the service up. Before, the refused
    /// file's unchanged content was not judged again, so after a.yaml was removed checkout was governed by nothing (422)
    /// until b.yaml was touched or the service restarted, when b.yaml loaded at once.
    /// </summary>
    [Theory]
    [InlineData("removed")]
    [InlineData("edited")]
    public async Task TwoFilesForOneService_TheFirstGivesItUp_TheSecondGovernsWithoutARestart(string how)
    {
        await using var service = await TestService.StartAsync(
            ("a.yaml", TestRunbooks.Minimal("checkout")),
            ("b.yaml", TestRunbooks.Minimal("checkout", version: 7).Replace("name: checkout", "name: checkout-two", StringComparison.Ordinal)));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.rejected'"));

        if (how == "removed")
        {
            File.Delete(service.Runbooks.PathOf("a.yaml"));
        }
        else
        {
            service.Runbooks.Write("a.yaml", TestRunbooks.Minimal("checkout", version: 2).Replace("  service: checkout", "  service: cart", StringComparison.Ordinal));
        }

        await service.ReloadRunbooksAsync();
        var response = await service.Webhooks.SendEventAsync("predeploy", "after-a-gave-up");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var runbook = (await response.JsonAsync()).GetProperty("runbook");
        Assert.Equal("checkout-two", runbook.GetProperty("name").GetString());
        Assert.Equal(7, runbook.GetProperty("version").GetInt32());
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.rejected'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.loaded' AND data::jsonb ->> 'name' = 'checkout-two'"));
    }

    [Fact]
    public async Task TwoFilesWithOneName_SecondIsRejectedAtTheLineOfMetadataName()
    {
        await using var service = await TestService.StartAsync(
            ("cart.yaml", TestRunbooks.Minimal("cart")),
            ("dupsvc.yaml", TestRunbooks.Minimal("cart").Replace("  service: cart", "  service: dupsvc", StringComparison.Ordinal)));

        var rejection = await service.Database.ScalarAsync<string>("SELECT data FROM audit_events WHERE type = 'runbook.rejected'");

        Assert.Contains("is already used by", rejection, StringComparison.Ordinal);
        Assert.Contains("metadata.name", rejection, StringComparison.Ordinal);
        Assert.Contains("\"line\":4,", rejection, StringComparison.Ordinal);
        Assert.Contains("dupsvc.yaml", rejection, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_WithTheFileInvalid_ServesTheStoredLastGoodVersion_AndSaysSo()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var settings = new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder };
        await using (var first = new RolloutGateHost(database, settings))
        {
            _ = first.Services; // started: v1 loaded and stored
        }

        runbooks.Write("checkout.yaml", Broken(version: 2));
        await using var second = new RolloutGateHost(database, settings);
        var response = await new WebhookClient(second.CreateClient()).SendEventAsync("predeploy", "after-restart");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await response.JsonAsync();
        Assert.Equal("allow", answer.GetProperty("verdict").GetString());
        Assert.Equal(1, answer.GetProperty("runbook").GetProperty("version").GetInt32());
        Assert.Contains(second.Logs.Lines, line => line.Contains("; the last good version, checkout v1, stays in force", StringComparison.Ordinal));
        Assert.Contains(second.Logs.Lines, line => line.Contains("Runbook checkout v1", StringComparison.Ordinal)
            && line.Contains("the stored last good version", StringComparison.Ordinal));
        var rejection = await database.ScalarAsync<string>("SELECT data FROM audit_events WHERE type = 'runbook.rejected'");
        Assert.Contains("maxIncrase", rejection, StringComparison.Ordinal);
        Assert.Contains("\"keptVersion\":1", rejection, StringComparison.Ordinal);
    }

    /// <summary>
    /// The last good version is the one last in force from that file, not the newest stored: content put back to an
    /// earlier version is stored only once, so the newest row would be the version that was replaced.
    /// </summary>
    [Fact]
    public async Task Start_WithTheFileInvalid_AfterARevert_ServesTheVersionLastInForce()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var settings = new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder };
        await using (var first = new RolloutGateHost(database, settings))
        {
            var loader = first.Services.GetRequiredService<RunbookLoader>();
            runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
            await loader.ScanAsync(CancellationToken.None);
            runbooks.Write("checkout.yaml", TestRunbooks.Minimal());
            await loader.ScanAsync(CancellationToken.None);
        }

        runbooks.Write("checkout.yaml", Broken(version: 3));
        await using var second = new RolloutGateHost(database, settings);
        var response = await new WebhookClient(second.CreateClient()).SendEventAsync("predeploy", "after-revert");

        Assert.Equal(2, await database.ScalarAsync<long>("SELECT count(*) FROM runbook_versions"));
        Assert.Equal(1, (await response.JsonAsync()).GetProperty("runbook").GetProperty("version").GetInt32());
    }

    /// <summary>
    /// A file added beside the one that governs a service, claiming it too (a copy saved under another name), is refused,
    /// and stays refused when the service restarts or another replica starts: the file that governed keeps the service.
    /// Before, a start judged the files in name order, so a copy whose name sorts first (a-checkout-copy.yaml before
    /// checkout.yaml) took the service over at the next restart, and replicas started at different times disagreed on
    /// which runbook governed it.
    /// </summary>
    [Fact]
    public async Task Restart_WithASecondFileForTheService_TheFileThatGovernedItKeepsIt()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var settings = new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder };
        await using (var first = new RolloutGateHost(database, settings))
        {
            _ = first.Services; // started: checkout.yaml in force
            runbooks.Write("a-checkout-copy.yaml", TestRunbooks.Minimal(version: 9).Replace("name: checkout", "name: checkout-copy", StringComparison.Ordinal));
            await first.Services.GetRequiredService<RunbookLoader>().ScanAsync(CancellationToken.None);
            Assert.Equal("checkout", first.Services.GetRequiredService<RunbookCatalog>().Find("checkout", "production")?.Runbook.Name);
        }

        await using var second = new RolloutGateHost(database, settings);

        Assert.Equal("checkout", second.Services.GetRequiredService<RunbookCatalog>().Find("checkout", "production")?.Runbook.Name);
        Assert.Contains(second.Logs.Lines, line => line.Contains(
            "a-checkout-copy.yaml:7: service 'checkout' in environment 'production' is already governed by ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_WithAnInvalidFile_ThatWasRemovedBefore_GovernsNothing()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()));
        var settings = new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder };
        await using (var first = new RolloutGateHost(database, settings))
        {
            File.Delete(runbooks.PathOf("checkout.yaml"));
            await first.Services.GetRequiredService<RunbookLoader>().ScanAsync(CancellationToken.None);
        }

        runbooks.Write("checkout.yaml", Broken(version: 2));
        await using var second = new RolloutGateHost(database, settings);
        var response = await new WebhookClient(second.CreateClient()).SendEventAsync("predeploy", "after-removal");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains(second.Logs.Lines, line => line.Contains("; the file has no last good version, so it governs nothing until it is fixed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RemovedFile_NoLongerGovernsNewDeployments()
    {
        await using var service = await TestService.StartAsync();

        File.Delete(service.Runbooks.PathOf("checkout.yaml"));
        await service.ReloadRunbooksAsync();

        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await service.Webhooks.SendEventAsync("predeploy", "gone")).StatusCode);
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.removed'"));
    }

    /// <summary>
    /// A runbook file that cannot be read is one error for that file, with its reason, logged and audited once by each
    /// replica; its last good version stays in force, in a running service and after a restart, and the scans go on with
    /// the other files. Before, a file the service may not open threw out of every scan (no other edit was loaded) and out
    /// of the first one (the service did not start); a FIFO hung the scan for ever, start-up too; a dangling link was logged
    /// at every scan, never audited, and after a restart its last good version was not served (422). A folder named
    /// checkout.yaml was passed over, so the runbook was removed (422, runbook.removed); a 3 GB file was refused as "too
    /// long" by .NET's read of the whole file, not by the 1 MiB limit (and one under 2 GB was read whole at every scan).
    /// </summary>
    [Theory]
    [InlineData(TestRunbooks.NotPermitted, "checkout.yaml:1: cannot read the file: Access to the path")]
    [InlineData(TestRunbooks.Fifo, "checkout.yaml:1: the file is empty, or not a regular file (a FIFO or a device is not read")]
    [InlineData(TestRunbooks.DanglingLink, "checkout.yaml:1: cannot read the file: it is a symbolic link to ")]
    [InlineData(TestRunbooks.Subfolder, "checkout.yaml:1: it is a folder, not a file; runbooks are read from the files directly in the runbooks folder")]
    [InlineData(TestRunbooks.TooLarge, "checkout.yaml:1: the file is 3221225472 bytes long; a runbook file is at most 1048576 bytes (1 MiB)")]
    public async Task AFileThatCannotBeRead_KeepsItsLastGoodVersion_RunningAndAfterARestart_SaysWhyOnce_AndTheOthersLoad(string kind, string reason)
    {
        var limit = TimeSpan.FromSeconds(60);
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", TestRunbooks.Minimal()), ("cart.yaml", TestRunbooks.Minimal("cart")));
        var settings = new Dictionary<string, string?> { ["RolloutGate:RunbooksPath"] = runbooks.Folder };
        await using (var first = new RolloutGateHost(database, settings))
        {
            var loader = first.Services.GetRequiredService<RunbookLoader>(); // started: both loaded and stored
            TestRunbooks.MakeUnreadable(runbooks.PathOf("checkout.yaml"), kind);
            runbooks.Write("cart.yaml", TestRunbooks.Minimal("cart", version: 2));
            await loader.ScanAsync(CancellationToken.None).WaitAsync(limit);
            await loader.ScanAsync(CancellationToken.None).WaitAsync(limit);

            await AssertCheckoutV1AndCartV2Async(new WebhookClient(first.CreateClient()), "running");
            Assert.Contains("the last good version, checkout v1, stays in force",
                Assert.Single(first.Logs.Lines, line => line.Contains(reason, StringComparison.Ordinal)), StringComparison.Ordinal);
        }

        await using var second = new RolloutGateHost(database, settings);
        var webhooks = new WebhookClient(await Task.Run(second.CreateClient).WaitAsync(limit));
        await second.Services.GetRequiredService<RunbookLoader>().ScanAsync(CancellationToken.None).WaitAsync(limit);

        await AssertCheckoutV1AndCartV2Async(webhooks, "restarted");
        Assert.Single(second.Logs.Lines, line => line.Contains(reason, StringComparison.Ordinal));
        var rejections = await database.ScalarAsync<string>("SELECT string_agg(data, ' ') FROM audit_events WHERE type = 'runbook.rejected'");
        Assert.Equal(2, await database.ScalarAsync<long>("SELECT count(*) FROM audit_events WHERE type = 'runbook.rejected' AND data LIKE '%\"keptVersion\":1%'"));
        Assert.Contains(reason["checkout.yaml:1: ".Length..], rejections, StringComparison.Ordinal);
    }

    private static async Task AssertCheckoutV1AndCartV2Async(WebhookClient webhooks, string phase)
    {
        var checkout = await webhooks.SendEventAsync("predeploy", $"checkout-{phase}");
        Assert.Equal(HttpStatusCode.OK, checkout.StatusCode);
        Assert.Equal(1, (await checkout.JsonAsync()).GetProperty("runbook").GetProperty("version").GetInt32());
        await webhooks.SendEventAsync("cancelled", $"checkout-{phase}");
        var cart = await webhooks.SendEventAsync("predeploy", $"cart-{phase}", service: "cart");
        Assert.Equal(2, (await cart.JsonAsync()).GetProperty("runbook").GetProperty("version").GetInt32());
        await webhooks.SendEventAsync("cancelled", $"cart-{phase}", service: "cart");
    }

    private static string Broken(int version) =>
        TestRunbooks.Minimal(version: version).Replace("maxIncrease: 20%", "maxIncrase: 20%", StringComparison.Ordinal);

    [Fact]
    public async Task HostStoppingWhileAScanWritesItsAuditEvents_TheScanIsRecordedWhole_AndNothingFails()
    {
        await using var service = await TestService.StartAsync(
            ("checkout.yaml", TestRunbooks.Minimal("checkout")), ("cart.yaml", TestRunbooks.Minimal("cart")));

        // Another session holds audit_events in SHARE mode, so the next scan's audit events wait to be inserted (as they
        // wait behind busy writers under load); the host is told to stop meanwhile.
        await using var holder = new NpgsqlConnection(service.Database.AdminConnectionString);
        await holder.OpenAsync();
        await using var holding = await holder.BeginTransactionAsync();
        await using (var share = new NpgsqlCommand("LOCK TABLE audit_events IN SHARE MODE", holder, holding))
        {
            await share.ExecuteNonQueryAsync();
        }

        File.Delete(service.Runbooks.PathOf("cart.yaml"));
        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal("checkout", version: 2));
        await SlackTestService.EventuallyAsync(async () => await WaitingForAuditEventsAsync(service) != 0, "the next scan's audit events waiting for the lock");
        Assert.Equal(1, await WaitingForAuditEventsAsync(service));
        var stopped = service.Host.Services.GetRequiredService<IHost>().StopAsync(CancellationToken.None);
        await Task.Delay(500);
        await holding.CommitAsync();
        await stopped.WaitAsync(TimeSpan.FromSeconds(30));

        // What the scan found is on record, every part of it: the new version with the runbook.loaded event that announces
        // it (not a version stored that no event announces, which no later scan would announce), and the removal. An
        // orderly stop logs no error.
        Assert.Equal(1, await service.CountAsync("runbook_versions", "name = 'checkout' AND version = 2"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.loaded' AND data::jsonb->>'version' = '2'"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.removed' AND data::jsonb->>'name' = 'cart'"));
        var errors = service.Host.Logs.Lines.Where(line => line.StartsWith("Error ", StringComparison.Ordinal) || line.StartsWith("Critical ", StringComparison.Ordinal)).ToList();
        Assert.Empty(errors);
    }

    [Fact]
    public async Task AScanThatCannotBeRecorded_IsJudgedAgainWhole_ByTheNextScan()
    {
        await using var service = await TestService.StartAsync();
        await service.Database.ExecuteAsync("REVOKE INSERT ON audit_events FROM rolloutgate", asAdmin: true);

        service.Runbooks.Write("checkout.yaml", TestRunbooks.Minimal(version: 2));
        await Assert.ThrowsAsync<DbUpdateException>(service.ReloadRunbooksAsync);
        await service.Database.ExecuteAsync("GRANT INSERT ON audit_events TO rolloutgate", asAdmin: true);
        await service.ReloadRunbooksAsync();

        // The failed scan stored nothing (its version went with its audit event) and did not count the edit as seen: the
        // next one stores it, announces it and puts it in force.
        Assert.Equal(1, await service.CountAsync("runbook_versions", "name = 'checkout' AND version = 2"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'runbook.loaded' AND data::jsonb->>'version' = '2'"));
        var answer = await (await service.Webhooks.SendEventAsync("predeploy", "after-failed-scan")).JsonAsync();
        Assert.Equal(2, answer.GetProperty("runbook").GetProperty("version").GetInt32());
    }

    private static Task<long> WaitingForAuditEventsAsync(TestService service) => service.Database.ScalarAsync<long>(
        "SELECT count(*) FROM pg_locks WHERE relation = 'audit_events'::regclass AND NOT granted", asAdmin: true);
}
