using System.Globalization;
using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RolloutGate.Audit;
using RolloutGate.Core.Audit;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Audit;

public sealed class AuditTrailTests
{
    [Fact]
    public async Task Verify_UntouchedTrail_IsOk()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "a-1");
        await service.Webhooks.SendEventAsync("deployed", "a-1");
        using var reader = service.Reader();

        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");

        Assert.True(verify.GetProperty("ok").GetBoolean());
        Assert.Equal(await service.CountAsync("audit_events"), verify.GetProperty("events").GetInt64());
    }

    [Fact]
    public async Task Verify_RowEditedBySuperuser_ReportsFirstBrokenIdAndTheEventsVerifiedBeforeIt()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "a-2");
        await service.Webhooks.SendEventAsync("deployed", "a-2");
        await service.Webhooks.SendEventAsync("predeploy", "a-3", deliveryId: "a-3-predeploy");
        var target = await service.Database.ScalarAsync<long>("SELECT min(id) FROM audit_events WHERE type = 'webhook.deployed'");
        var before = await service.CountAsync("audit_events", $"id < {target}");

        // A superuser can switch the append-only trigger off; the hash chain still gives the edit away.
        await service.Database.ExecuteAsync(
            $"SET session_replication_role = replica; UPDATE audit_events SET actor = 'mallory' WHERE id = {target}", asAdmin: true);
        using var reader = service.Reader();
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");

        Assert.False(verify.GetProperty("ok").GetBoolean());
        Assert.Equal(target, verify.GetProperty("firstBrokenId").GetInt64());
        // Counted up to the broken event, not in whole batches of 5,000 (it said 0 here).
        Assert.True(before > 0);
        Assert.Equal(before, verify.GetProperty("events").GetInt64());
    }

    [Fact]
    public async Task Verify_RowDeletedBySuperuser_ReportsTheEventAfterTheGap()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "a-3");
        await service.Webhooks.SendEventAsync("deployed", "a-3");
        var target = await service.Database.ScalarAsync<long>("SELECT min(id) FROM audit_events WHERE type = 'webhook.predeploy'");
        var following = await service.Database.ScalarAsync<long>($"SELECT min(id) FROM audit_events WHERE id > {target}");

        await service.Database.ExecuteAsync($"SET session_replication_role = replica; DELETE FROM audit_events WHERE id = {target}", asAdmin: true);
        using var reader = service.Reader();
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");

        Assert.False(verify.GetProperty("ok").GetBoolean());
        Assert.Equal(following, verify.GetProperty("firstBrokenId").GetInt64());
    }

    [Fact]
    public async Task Append_OutsideATransaction_RefusedAndNothingWritten()
    {
        // An event commits exactly when the change it records does, so it is appended inside that change's transaction.
        // A caller that appends without one is refused before anything is written: that makes its mistake fail its tests.
        await using var service = await TestService.StartAsync();
        var before = await service.CountAsync("audit_events");
        await using var scope = service.Host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();

        await Assert.ThrowsAsync<InvalidOperationException>(() => scope.ServiceProvider.GetRequiredService<AuditTrail>().AppendAsync(
            db, [new AuditEntry(AuditEventTypes.Refusal, null, "checkout", "mallory", new { })], CancellationToken.None));

        Assert.Equal(before, await service.CountAsync("audit_events"));
    }

    [Theory]
    [InlineData("UPDATE audit_events SET actor = 'mallory' WHERE id = {0}", 5500)]
    [InlineData("DELETE FROM audit_events WHERE id = {0}", 5000)]
    public async Task Verify_LongerTrailThanOneBatch_HoldsAcrossTheBatchesAndAnEventChangedInALaterOneIsFound(string tampering, int before)
    {
        // verify reads the chain 5,000 events at a time: the second batch must be checked too, and chained to the first
        // (an event deleted where they meet leaves each batch whole by itself).
        await using var service = await TestService.StartAsync();
        await using (var scope = service.Host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
            await using var transaction = await db.Database.BeginTransactionAsync();
            await scope.ServiceProvider.GetRequiredService<AuditTrail>().AppendAsync(db,
                [.. Enumerable.Range(0, 6000).Select(i => new AuditEntry(AuditEventTypes.Refusal, null, "checkout", $"user-{i}", new { i }))],
                CancellationToken.None);
            await transaction.CommitAsync();
        }

        using var reader = service.Reader();
        var intact = await reader.GetJsonAsync("/api/v1/audit/verify");
        Assert.True(intact.GetProperty("ok").GetBoolean());
        Assert.Equal(await service.CountAsync("audit_events"), intact.GetProperty("events").GetInt64());

        var target = await service.Database.ScalarAsync<long>($"SELECT id FROM audit_events ORDER BY id OFFSET {before} LIMIT 1");
        var following = await service.Database.ScalarAsync<long>($"SELECT min(id) FROM audit_events WHERE id > {target}");
        await service.Database.ExecuteAsync(
            "SET session_replication_role = replica; " + string.Format(CultureInfo.InvariantCulture, tampering, target), asAdmin: true);
        var verify = await reader.GetJsonAsync("/api/v1/audit/verify");

        Assert.False(verify.GetProperty("ok").GetBoolean());
        Assert.Equal(tampering.StartsWith("DELETE", StringComparison.Ordinal) ? following : target, verify.GetProperty("firstBrokenId").GetInt64());
        Assert.Equal(before, verify.GetProperty("events").GetInt64());
    }

    [Fact]
    public async Task Verify_GivesTheHead_AndAnAnchorTakenFromItHoldsWhileTheTrailGrows()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "h-1");
        using var reader = service.Reader();

        var first = await reader.GetJsonAsync("/api/v1/audit/verify");
        var head = first.GetProperty("head");
        var newest = await service.Database.ScalarAsync<long>("SELECT max(id) FROM audit_events");
        Assert.Equal(newest, head.GetProperty("id").GetInt64());
        Assert.Equal(await service.Database.ScalarAsync<string>($"SELECT hash FROM audit_events WHERE id = {newest}"), head.GetProperty("hash").GetString());

        await service.Webhooks.SendEventAsync("deployed", "h-1");
        // Upper-case hex, as a person may copy it, is the same hash.
        var anchored = $"{newest}:{head.GetProperty("hash").GetString()!.ToUpperInvariant()}";
        var later = await reader.GetJsonAsync($"/api/v1/audit/verify?anchor={anchored}");

        Assert.True(later.GetProperty("ok").GetBoolean());
        Assert.True(later.GetProperty("anchor").GetProperty("holds").GetBoolean());
        Assert.True(later.GetProperty("head").GetProperty("id").GetInt64() > newest);
    }

    [Fact]
    public async Task Verify_ChainRewrittenWholeBySuperuser_HoldsByItself_ButNotAgainstAnAnchorTakenBefore()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "h-2");
        await service.Webhooks.SendEventAsync("deployed", "h-2");
        using var reader = service.Reader();
        var head = (await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("head");
        var anchor = $"{head.GetProperty("id").GetInt64()}:{head.GetProperty("hash").GetString()}";

        // Someone who can write the table edits an event and recomputes every hash from it on, as the service would.
        var target = await service.Database.ScalarAsync<long>("SELECT min(id) FROM audit_events WHERE type = 'webhook.deployed'");
        await service.Database.ExecuteAsync($"SET session_replication_role = replica; UPDATE audit_events SET actor = 'mallory' WHERE id = {target}", asAdmin: true);
        await using (var scope = service.Host.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
            var rows = db.AuditEvents.AsNoTracking().Where(e => e.Id >= target).OrderBy(e => e.Id).ToList();
            var previous = rows[0].PrevHash;
            foreach (var row in rows)
            {
                var hash = AuditChain.Hash(previous, AuditTrail.ToChained(row));
                await service.Database.ExecuteAsync(
                    $"SET session_replication_role = replica; UPDATE audit_events SET prev_hash = '{previous}', hash = '{hash}' WHERE id = {row.Id}", asAdmin: true);
                previous = hash;
            }
        }

        var plain = await reader.GetJsonAsync("/api/v1/audit/verify");
        var anchored = await reader.GetJsonAsync($"/api/v1/audit/verify?anchor={anchor}");

        Assert.True(plain.GetProperty("ok").GetBoolean());
        Assert.False(anchored.GetProperty("ok").GetBoolean());
        var check = anchored.GetProperty("anchor");
        Assert.False(check.GetProperty("holds").GetBoolean());
        Assert.Equal(plain.GetProperty("head").GetProperty("hash").GetString(), check.GetProperty("found").GetString());
        Assert.False(anchored.TryGetProperty("firstBrokenId", out _));
    }

    [Fact]
    public async Task Verify_TrailCutShortAtItsEnd_HoldsByItself_ButTheAnchoredEventIsGone()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "h-3");
        using var reader = service.Reader();
        var cut = await service.Database.ScalarAsync<long>("SELECT max(id) FROM audit_events") + 1;
        await service.Webhooks.SendEventAsync("deployed", "h-3");
        var head = (await reader.GetJsonAsync("/api/v1/audit/verify")).GetProperty("head");

        // A restore from an older backup looks like this: the newest events are not there, and what is there holds.
        await service.Database.ExecuteAsync($"SET session_replication_role = replica; DELETE FROM audit_events WHERE id >= {cut}", asAdmin: true);
        var plain = await reader.GetJsonAsync("/api/v1/audit/verify");
        var anchored = await (await reader.GetAsync(new Uri(
            $"/api/v1/audit/verify?anchor={head.GetProperty("id").GetInt64()}:{head.GetProperty("hash").GetString()}", UriKind.Relative))).JsonAsync();

        Assert.True(plain.GetProperty("ok").GetBoolean());
        Assert.False(anchored.GetProperty("ok").GetBoolean());
        Assert.Equal(JsonValueKindNull, anchored.GetProperty("anchor").GetProperty("found").ValueKind);
        Assert.Equal(cut - 1, anchored.GetProperty("head").GetProperty("id").GetInt64());
    }

    [Theory]
    [InlineData("12")]
    [InlineData("12:abc")]
    [InlineData("0:0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("x:0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("12:000000000000000000000000000000000000000000000000000000000000000g")]
    public async Task Verify_AnchorNotIdColonHash_400NamingTheForm(string anchor)
    {
        await using var service = await TestService.StartAsync();
        using var reader = service.Reader();

        var response = await reader.GetAsync(new Uri($"/api/v1/audit/verify?anchor={Uri.EscapeDataString(anchor)}", UriKind.Relative));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("is not ID:HASH", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("UPDATE audit_events SET actor = 'mallory'")]
    [InlineData("DELETE FROM audit_events")]
    [InlineData("TRUNCATE audit_events")]
    public async Task ApplicationRole_CannotChangeAuditRows(string sql)
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "a-4");
        var before = await service.CountAsync("audit_events");

        var error = await Assert.ThrowsAsync<PostgresException>(() => service.Database.ExecuteAsync(sql));

        Assert.Contains("append-only", error.MessageText, StringComparison.Ordinal);
        Assert.Equal(before, await service.CountAsync("audit_events"));
    }

    [Fact]
    public async Task Events_FilteredAndPaged()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "p-1");
        await service.Webhooks.SendEventAsync("deployed", "p-1");
        using var reader = service.Reader();

        var first = await reader.GetJsonAsync("/api/v1/audit/events?deploymentId=p-1&limit=2");
        var fromZero = await reader.GetJsonAsync("/api/v1/audit/events?deploymentId=p-1&limit=2&after=0");
        var next = first.GetProperty("next").GetString();
        var second = await reader.GetJsonAsync($"/api/v1/audit/events?deploymentId=p-1&limit=100&after={next}");
        var webhooks = await reader.GetJsonAsync("/api/v1/audit/events?type=webhook.");
        var byActor = await reader.GetJsonAsync("/api/v1/audit/events?actor=alice&type=webhook.deployed");
        var badLimit = await reader.GetAsync(new Uri("/api/v1/audit/events?limit=0", UriKind.Relative));
        var anonymous = await service.Client.GetAsync(new Uri("/api/v1/audit/events", UriKind.Relative));

        Assert.Equal(2, first.GetProperty("events").GetArrayLength());
        // Event ids start at 1: after=0 is the first page.
        Assert.Equal(first.GetRawText(), fromZero.GetRawText());
        var total = await service.CountAsync("audit_events", "deployment_id = 'p-1'");
        Assert.Equal(total - 2, second.GetProperty("events").GetArrayLength());
        Assert.Equal(JsonValueKindNull, second.GetProperty("next").ValueKind);
        Assert.Equal(2, webhooks.GetProperty("events").GetArrayLength());
        var deployed = Assert.Single(byActor.GetProperty("events").EnumerateArray());
        Assert.Equal("p-1", deployed.GetProperty("deploymentId").GetString());
        Assert.Equal("p-1", deployed.GetProperty("data").GetProperty("request").GetProperty("deploymentId").GetString());
        Assert.Equal(64, deployed.GetProperty("hash").GetString()!.Length);
        Assert.Equal(HttpStatusCode.BadRequest, badLimit.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }

    [Fact]
    public async Task Events_AsCsv_NameTheNextPageInALinkHeader()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "p-1");
        await service.Webhooks.SendEventAsync("deployed", "p-1");
        using var reader = service.Reader();
        reader.DefaultRequestHeaders.Accept.ParseAdd("text/csv");

        var rows = new List<string>();
        var url = "/api/v1/audit/events?deploymentId=p-1&limit=2";
        for (var pages = 0; url is not null; pages++)
        {
            Assert.True(pages < 10, "the Link headers do not end");
            var response = await reader.GetAsync(new Uri(url, UriKind.Relative));
            Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
            rows.AddRange((await response.Content.ReadAsStringAsync()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Skip(1));
            url = response.Headers.TryGetValues("Link", out var links)
                ? System.Text.RegularExpressions.Regex.Match(links.Single(), "^<([^>]+)>; rel=\"next\"$").Groups[1].Value
                : null;
        }

        // Every event of the deployment once, in id order, across pages of two.
        var ids = rows.Select(row => long.Parse(row.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(await service.CountAsync("audit_events", "deployment_id = 'p-1'"), ids.Count);
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public async Task Events_NeverContainTheWebhookSecretOrTokens()
    {
        await using var service = await TestService.StartAsync();
        await service.Webhooks.SendEventAsync("predeploy", "s-1");
        await service.Webhooks.SendAsync(WebhookClient.Body("deployed", "s-1"), bearer: RolloutGateHost.WebhookToken);

        var everything = await service.Database.ScalarAsync<string>("SELECT string_agg(data || coalesce(actor, ''), ' ') FROM audit_events");

        Assert.DoesNotContain(RolloutGateHost.WebhookSecret, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(RolloutGateHost.WebhookToken, everything, StringComparison.Ordinal);
    }

    private const System.Text.Json.JsonValueKind JsonValueKindNull = System.Text.Json.JsonValueKind.Null;
}
