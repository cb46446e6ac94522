using System.Text.Json;
using Cluster.Protos.V1;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster status</c>: every attention node's load and cache as the gateway sees them (<c>GET /cluster/status</c>).</summary>
public static class StatusCommand
{
    public const string Usage = "status [--gateway http://127.0.0.1:8000] [--control 127.0.0.1:8001] " + ClusterTokenArgs.Usage + " [--json]";

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string gateway = args.String("gateway", "http://127.0.0.1:8000").TrimEnd('/');
        bool json = args.Flag("json");
        // The gateway's gRPC port, where its Control service tells the expert placement.
        var control = new ControlTarget(args.String("control", "127.0.0.1:8001"), ClusterTokenArgs.Parse(args));
        args.RejectUnknown();
        if (!Uri.TryCreate(gateway, UriKind.Absolute, out Uri? baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new CliException($"--gateway must be an http:// or https:// address (got '{gateway}')");
        string url = gateway + "/cluster/status";

        string body;
        using (var http = new HttpClient { Timeout = RequestTimeout })
        {
            try
            {
                using var response = await http.GetAsync(url, cancel);
                body = await response.Content.ReadAsStringAsync(cancel);
                if (!response.IsSuccessStatusCode)
                    throw new IOException($"{url}: HTTP {(int)response.StatusCode} {FirstLine(body)}".TrimEnd());
            }
            catch (HttpRequestException e) { throw new IOException($"cannot reach the gateway at {url}: {e.Message}"); }
            catch (TaskCanceledException) when (!cancel.IsCancellationRequested)
            {
                throw new IOException($"the gateway at {url} did not answer within {RequestTimeout.TotalSeconds:F0} s");
            }
        }

        JsonDocument document;
        try { document = JsonDocument.Parse(body); }
        catch (JsonException e) { throw new InvalidDataException($"{url} did not answer JSON: {e.Message}"); }
        (ExpertsStatus? experts, string? problem) = await StatusExperts.ReadAsync(control, cancel);
        using (document)
        {
            if (json) Console.Out.WriteLine(StatusExperts.Merge(body, experts, problem));
            else
            {
                StatusTable.Write(document.RootElement, Console.Out);
                StatusExperts.Write(experts, problem, Console.Out);
            }
        }
        return 0;
    }

    private static string FirstLine(string text)
    {
        int end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end];
    }
}
