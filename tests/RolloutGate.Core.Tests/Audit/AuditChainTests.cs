using RolloutGate.Core.Audit;

namespace RolloutGate.Core.Tests.Audit;

public sealed class AuditChainTests
{
    private static readonly DateTimeOffset At = new(2026, 11, 21, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Hash_SameEvent_IsDeterministic()
    {
        var auditEvent = Event(1, "{\"a\":1}");

        Assert.Equal(AuditChain.Hash(AuditChain.Genesis, auditEvent), AuditChain.Hash(AuditChain.Genesis, auditEvent));
        Assert.Equal(64, AuditChain.Hash(AuditChain.Genesis, auditEvent).Length);
    }

    [Fact]
    public void Hash_AnyFieldChanged_ChangesTheHash()
    {
        var original = Event(1, "{\"a\":1}");
        var hash = AuditChain.Hash(AuditChain.Genesis, original);

        Assert.NotEqual(hash, AuditChain.Hash(AuditChain.Genesis, original with { Data = "{\"a\":2}" }));
        Assert.NotEqual(hash, AuditChain.Hash(AuditChain.Genesis, original with { Actor = "mallory" }));
        Assert.NotEqual(hash, AuditChain.Hash(AuditChain.Genesis, original with { At = At.AddTicks(10) }));
        Assert.NotEqual(hash, AuditChain.Hash(AuditChain.Genesis, original with { DeploymentId = null }));
        Assert.NotEqual(hash, AuditChain.Hash(new string('1', 64), original));
    }

    [Fact]
    public void Hash_NullAndEmptyString_AreDifferent()
    {
        Assert.NotEqual(
            AuditChain.Hash(AuditChain.Genesis, Event(1, "{}") with { Actor = null }),
            AuditChain.Hash(AuditChain.Genesis, Event(1, "{}") with { Actor = "" }));
    }

    [Fact]
    public void FirstBroken_IntactChain_ReturnsNull()
    {
        var chain = Chain(5);
        var running = AuditChain.Genesis;

        Assert.Null(AuditChain.FirstBroken(chain, ref running));
        Assert.Equal(chain[^1].Hash, running);
    }

    [Fact]
    public void FirstBroken_EditedEvent_ReturnsItsId()
    {
        var chain = Chain(5);
        chain[2] = chain[2] with { Event = chain[2].Event with { Data = "{\"tampered\":true}" } };
        var running = AuditChain.Genesis;

        Assert.Equal(3, AuditChain.FirstBroken(chain, ref running));
    }

    [Fact]
    public void FirstBroken_DeletedEvent_ReturnsTheIdAfterTheGap()
    {
        var chain = Chain(5);
        chain.RemoveAt(1);
        var running = AuditChain.Genesis;

        Assert.Equal(3, AuditChain.FirstBroken(chain, ref running));
    }

    [Fact]
    public void ToStoredPrecision_DropsSubMicrosecondTicks()
    {
        Assert.Equal(At.AddTicks(10), AuditChain.ToStoredPrecision(At.AddTicks(17)));
    }

    private static ChainedEvent Event(long id, string data) => new(id, At.AddSeconds(id), "webhook.predeploy", "gh-1", "checkout", "alice", data);

    private static List<(ChainedEvent Event, string PrevHash, string Hash)> Chain(int length)
    {
        var chain = new List<(ChainedEvent, string, string)>();
        var previous = AuditChain.Genesis;
        for (var id = 1; id <= length; id++)
        {
            var auditEvent = Event(id, $"{{\"n\":{id}}}");
            var hash = AuditChain.Hash(previous, auditEvent);
            chain.Add((auditEvent, previous, hash));
            previous = hash;
        }

        return chain;
    }
}
