namespace Cluster.ExpertNode.Placement;

/// <summary>A physical slot holding a logical expert: the node (index into the plan's nodes) and the slot on it.</summary>
public readonly record struct ExpertReplica(int Node, int Slot);
