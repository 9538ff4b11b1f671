using System.Net;
using System.Net.Http.Headers;
using System.Text;
using RolloutGate.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace RolloutGate.Tests.Cli;

/// <summary>The pipeline examples in deploy/ci parse as YAML and send the events they are there to send.</summary>
public sealed class CiFilesTests
{
    public static TheoryData<string, string[]> Files => new()
    {
        { "github-actions.yml", ["ROLLOUTGATE_WEBHOOK_SECRET", "--delivery-id", "predeploy", "deployed", "rolledback", "cancelled", "github.run_attempt", "wait --deployment-id", "ROLLOUTGATE_READER_TOKEN"] },
        { "gitlab-ci.yml", ["ROLLOUTGATE_WEBHOOK_SECRET", "--delivery-id", "predeploy", "deployed", "rolledback", "cancelled", "rolloutgate-gate.sh", "wait --deployment-id", "ROLLOUTGATE_READER_TOKEN"] },
        { "argocd-notifications.yaml", ["Authorization", "Bearer $rolloutgate-webhook-token", "?delivery=", "\"event\": \"deployed\"", "\"event\": \"cancelled\"", "HMAC"] },
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void CiFile_ParsesAndMentionsWhatItMust(string file, string[] mentions)
    {
        var text = File.ReadAllText(TestPaths.RepositoryFile("deploy/ci/" + file));

        var yaml = new YamlStream();
        yaml.Load(new StringReader(text));

        var root = Assert.IsType<YamlMappingNode>(Assert.Single(yaml.Documents).RootNode);
        Assert.NotEmpty(root.Children);
        Assert.All(mentions, mention => Assert.Contains(mention, text, StringComparison.Ordinal));
    }

    [Fact]
    public void ArgoCdTemplates_AreYamlAndTheirBodiesJsonShaped()
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(TestPaths.RepositoryFile("deploy/ci/argocd-notifications.yaml"))));
        var data = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode).Children[new YamlScalarNode("data")];

        // Each value is itself YAML that Argo CD parses: the service, two templates and two triggers.
        Assert.Equal(5, data.Children.Count);
        foreach (var (_, value) in data.Children)
        {
            new YamlStream().Load(new StringReader(((YamlScalarNode)value).Value!));
        }
    }

    [Fact]
    public async Task Webhook_DeliveryIdInTheQuery_IsIdempotentLikeTheHeader()
    {
        await using var service = await TestService.StartAsync();
        var body = WebhookClient.Body("predeploy", "argo-1");

        async Task<HttpResponseMessage> SendAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/deployments?delivery=argocd-checkout-abc-predeploy")
            {
                Content = new StringContent(body, Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", RolloutGateHost.WebhookToken);
            return await service.Client.SendAsync(request);
        }

        var first = await SendAsync();
        var again = await SendAsync();

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await again.Content.ReadAsStringAsync());
        Assert.Equal(1, await service.CountAsync("webhook_deliveries", "delivery_id = 'argocd-checkout-abc-predeploy'"));
    }
}
