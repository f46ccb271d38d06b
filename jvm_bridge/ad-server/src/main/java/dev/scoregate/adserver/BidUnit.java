package dev.scoregate.adserver;

/**
 * What an advertiser's bid buys, and so how it becomes an eCPM: the expected revenue of one thousand impressions, in
 * the bid's currency (USD in the demo). The export's {@code pricing} section names each objective's unit.
 *
 * <p>A prediction the ad server did not score is passed as {@link Float#NaN}; an eCPM that needs it is NaN, which
 * {@link Auction} treats as "does not bid". Pure functions; thread-safe.
 */
public enum BidUnit {
    /** Cost per click: {@code 1000 * bid * pCTR}. */
    CPC {
        @Override
        public float ecpm(float bid, float pClick, float pConversion, float pCompletion) {
            return 1000f * bid * pClick;
        }
    },
    /** Cost per action (conversion): {@code 1000 * bid * pConversion}; pConversion is per impression. */
    CPA {
        @Override
        public float ecpm(float bid, float pClick, float pConversion, float pCompletion) {
            return 1000f * bid * pConversion;
        }
    },
    /** Cost per thousand impressions: the bid is the eCPM. */
    CPM {
        @Override
        public float ecpm(float bid, float pClick, float pConversion, float pCompletion) {
            return bid;
        }
    },
    /** Cost per thousand completed views (CTV): {@code bid * pCompletion}. */
    CPCM {
        @Override
        public float ecpm(float bid, float pClick, float pConversion, float pCompletion) {
            return bid * pCompletion;
        }
    };

    /**
     * The eCPM of a bid given the predictions (each a probability per impression, or NaN when not scored).
     */
    public abstract float ecpm(float bid, float pClick, float pConversion, float pCompletion);

    /**
     * The unit called {@code name} in the export's {@code pricing} section.
     *
     * @throws IllegalArgumentException for a unit this ad server does not know
     */
    public static BidUnit of(String name) {
        for (BidUnit unit : values()) {
            if (unit.name().equals(name)) {
                return unit;
            }
        }
        throw new IllegalArgumentException("unknown bid unit '" + name + "'; this ad server prices CPC, CPA, CPM "
                + "and CPCM");
    }
}
