using System.ComponentModel.DataAnnotations;

namespace Cluster.Gateway.Nodes;

/// <summary>How often one request may move to another node after its first token, when the node serving it is lost.</summary>
public sealed class MigrationOptions
{
    /// <summary>Migrations per request; past them (or with 0) a lost node ends the stream with its error.</summary>
    [Range(0, 16)]
    public int MaxMigrations { get; set; } = 2;
}
