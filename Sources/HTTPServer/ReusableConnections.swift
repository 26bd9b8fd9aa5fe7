/// The connections of one loop that hold nothing — accepted but silent, or idle between keep-alive requests — oldest
/// first. At the connection limit the listener closes the oldest of them to admit a newcomer, as nginx reuses its
/// idle connections: otherwise ten thousand silent sockets would lock out a health check or a real upload until
/// their header timeout. Connections that sent part of a request, or wait for a handler, are never taken.
/// Loop-confined, like the connections themselves; an intrusive list, so joining and leaving cost O(1).
struct ReusableConnections {
    private var oldest: Connection?
    private var newest: Connection?
    private(set) var count = 0

    mutating func insert(_ connection: Connection) {
        guard !connection.isReusable else { return }
        connection.isReusable = true
        connection.newerReusable = nil
        connection.olderReusable = newest
        if let newest { newest.newerReusable = connection } else { oldest = connection }
        newest = connection
        count += 1
    }

    mutating func remove(_ connection: Connection) {
        guard connection.isReusable else { return }
        connection.isReusable = false
        let older = connection.olderReusable
        let newer = connection.newerReusable
        if let older { older.newerReusable = newer } else { oldest = newer }
        if let newer { newer.olderReusable = older } else { newest = older }
        connection.olderReusable = nil
        connection.newerReusable = nil
        count -= 1
    }

    /// Takes the oldest idle connection out of the list, for the caller to close (closing it here would reach
    /// back into this list while it is being mutated).
    mutating func takeOldest() -> Connection? {
        guard let victim = oldest else { return nil }
        remove(victim)
        return victim
    }
}
