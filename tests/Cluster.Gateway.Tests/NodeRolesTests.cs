using Cluster.Protos.V1;

namespace Cluster.Gateway.Tests;

/// <summary>The one NodeRole's names: what --role and the reports use, parsed back to the same role.</summary>
public sealed class NodeRolesTests
{
    [Theory]
    [InlineData(NodeRole.Both, "both")]
    [InlineData(NodeRole.Prefill, "prefill")]
    [InlineData(NodeRole.Decode, "decode")]
    public void Each_served_role_has_one_name_that_parses_back(NodeRole role, string name)
    {
        Assert.Equal(name, role.Name());
        Assert.Equal(role, NodeRoles.Parse(name));
        Assert.Equal(role, NodeRoles.Parse(name.ToUpperInvariant()));
        Assert.True(role.IsServed());
    }

    [Fact]
    public void An_unknown_name_or_the_unspecified_role_is_no_role_to_serve()
    {
        Assert.Equal("unknown role 'middle' (expected prefill, decode or both)", Assert.Throws<ArgumentException>(() => NodeRoles.Parse("middle")).Message);
        Assert.False(NodeRole.Unspecified.IsServed());
        Assert.False(((NodeRole)7).IsServed());
    }
}
