using System.Text;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Tests.Infrastructure.Http;

public sealed class ResponseBodiesTests
{
    [Fact]
    public async Task StartAsync_CutInTheMiddleOfAnEmoji_EndsBeforeIt()
    {
        // Six bytes are read of "abcd😀ef": the emoji's four are cut after two.
        using var response = new HttpResponseMessage { Content = new ByteArrayContent(Encoding.UTF8.GetBytes("abcd\U0001F600ef")) };

        var (text, more) = await ResponseBodies.StartAsync(response, 6, CancellationToken.None);

        Assert.Equal("abcd", text);
        Assert.True(more);
    }

    [Fact]
    public async Task StartAsync_WholeBody_IsDecodedWhole()
    {
        using var response = new HttpResponseMessage { Content = new ByteArrayContent(Encoding.UTF8.GetBytes("abcd\U0001F600")) };

        var (text, more) = await ResponseBodies.StartAsync(response, 8, CancellationToken.None);

        Assert.Equal("abcd\U0001F600", text);
        Assert.False(more);
    }
}
