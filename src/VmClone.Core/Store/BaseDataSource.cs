namespace VmClone.Core.Store;

/// <summary>Where the data volumes of a base made from a clone take their content (New-VmBase -FromClone -DataFrom).</summary>
public enum BaseDataSource
{
    /// <summary>The data volume of the clone's own base: what clones of the old base started with, and so what clones of the new one should start with. The default.</summary>
    Base,

    /// <summary>The clone's current data volume: whatever was written to it while the update was prepared goes into every new clone.</summary>
    Clone,

    /// <summary>An empty data volume of the same size: clones of the new base get a standalone, empty data disk.</summary>
    Empty,
}
